/**
 * The Express middleware (`kinde-metering/express`), on the same core as the Fastify plugin:
 * `app.use(kindeMetering(options))` gives handlers `res.meter()`, and `meter(spec)` placed before a
 * route's handler meters that route when its response finishes. Express is only a type here: this
 * module never loads it.
 * @module
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { InvalidOptionError } from './core/errors.js'
import { consoleLogger } from './core/logger.js'
import { Metering, type CloseOutcome } from './core/metering.js'
import type { MeteringOptions } from './core/options.js'
import type { FlushOutcome, MeteringStats } from './core/stats.js'
import type { CustomerRef, Logger } from './core/types.js'
import { compileRouteMeter, type CompiledMeter, type RouteMeterSpec } from './route-meter.js'
import { resolveSetupCheck, type SetupCheckOption } from './doctor/startup.js'

/** What `meter()` meters: a feature code (+1 per counted response), `{ feature, value }`, or a list of them. */
export type RouteMeter = RouteMeterSpec<Request, Response>

/**
 * Options of the Express middleware: those of the core. Without `customer`, the request's verified
 * token claims bill its organization, else its user: `req.auth.payload` (express-oauth2-jwt-bearer),
 * else `req.auth` (express-jwt), else `req.user` (Passport and the like); `org_code` gives
 * `{ orgCode }`, else `sub` gives `{ userId }`, else the request is not metered.
 */
export interface KindeMeteringOptions extends MeteringOptions<Request>, SetupCheckOption {}

/** The middleware returned by {@link kindeMetering}: an Express handler that also exposes the core. */
export interface KindeMeteringMiddleware {
  (req: Request, res: Response, next: NextFunction): void
  /** The metering core this middleware records into. */
  readonly metering: Metering
  /** Delivers everything pending now; never rejects. See {@link Metering.flush}. */
  flush (): Promise<FlushOutcome>
  /** A snapshot of pending, sent and dropped usage. See {@link Metering.stats}. */
  stats (): MeteringStats
  /**
   * Stops the flush timer and delivers what is pending (retrying up to `shutdownTimeout`). Call it
   * after `server.close()`; Express has no shutdown hook of its own. Idempotent.
   */
  close (): Promise<CloseOutcome>
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Response {
      /**
       * Records `value` units of `feature` for this request's customer, right away and whatever the
       * response status, so it counts even if the client leaves before the response finishes.
       * Present once `app.use(kindeMetering(...))` has run for the request.
       */
      meter: (feature: string, value: number) => this
    }
  }
}

/** On `res`: the adapter of the kindeMetering middleware that saw the request. */
const kAdapter = Symbol('kinde-metering.adapter')
/** On `res`: `performance.now()` when the middleware saw the request, for `durationMs`. */
const kStart = Symbol('kinde-metering.start')

interface MeteredResponse extends Response {
  [kAdapter]?: ExpressAdapter
  [kStart]: number
}

/** Bounded (one per route and method) so the core's log-once sets stay small. */
function originOf (req: Request): string {
  const route = req.route as { path: unknown } | undefined
  return route === undefined ? `${req.method} *` : `${req.method} ${String(route.path)}`
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}

/** Without a `customer` option: the verified token's organization, else its user (see KindeMeteringOptions). */
function customerFromAuth (req: Request): CustomerRef | undefined {
  const { auth, user } = req as { auth?: unknown, user?: unknown }
  const claims = isObject(auth) ? (isObject(auth.payload) ? auth.payload : auth) : user
  if (!isObject(claims)) return undefined
  if (typeof claims.org_code === 'string') return { orgCode: claims.org_code }
  if (typeof claims.sub === 'string') return { userId: claims.sub }
  return undefined
}

/**
 * Body bytes of one response, read from its connection's byte counter: nothing is patched or
 * buffered. The counter is read when the route's meter middleware runs (or when a queued,
 * pipelined response gets the connection) and at `prefinish`, when the whole response has been
 * handed to the socket and before the next pipelined response may write.
 */
class BodyBytes {
  #socket: Socket | undefined
  #start = 0
  #end = 0
  /** Chunked-encoding framing around the chunks of streams piped into the response. */
  #framing = 0

  constructor (res: Response) {
    if (res.socket !== null) this.#begin(res.socket)
    else res.once('socket', socket => { this.#begin(socket) })
    res.once('prefinish', () => { this.#end = this.#socket!.bytesWritten })
    res.on('pipe', (source: Readable) => {
      source.on('data', (chunk: Buffer | string) => {
        const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length
        // Each non-empty write of a chunked body is framed as `<hex length>\r\n…\r\n`.
        if (length > 0) this.#framing += length.toString(16).length + 4
      })
    })
  }

  #begin (socket: Socket): void {
    this.#socket = socket
    this.#start = socket.bytesWritten
  }

  /**
   * Exact when the response declares `Content-Length`, is not chunked, or was chunked only by
   * piped streams. Each direct `res.write()` of a chunked body adds its framing: the chunk size in
   * hex plus 4 bytes (see README).
   */
  read (req: Request, res: Response): number {
    if (req.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304) return 0
    const length = res.getHeader('content-length')
    if (length !== undefined) return Number(length)
    const { _header: header, chunkedEncoding } = res as unknown as { _header: string, chunkedEncoding: boolean }
    const body = this.#end - this.#start - Buffer.byteLength(header, 'latin1')
    // A chunked body ends with `0\r\n\r\n`.
    return chunkedEncoding ? body - 5 - this.#framing : body
  }
}

/** What one kindeMetering middleware needs on the request path. */
class ExpressAdapter {
  readonly metering: Metering
  readonly #customerOf: NonNullable<KindeMeteringOptions['customer']>
  readonly #countStatus: (statusCode: number) => boolean
  readonly #logger: Logger
  #countStatusLogged = false

  constructor (options: KindeMeteringOptions) {
    this.metering = new Metering(options)
    this.#customerOf = options.customer ?? customerFromAuth
    this.#countStatus = this.metering.config.countStatus
    this.#logger = options.logger ?? consoleLogger
  }

  /** Hands the request's customer to `then`; a failing customer function is counted, never thrown. */
  withCustomer (req: Request, origin: string, then: (customer: CustomerRef) => void): void {
    this.metering.withCustomer(this.#customerOf, req, origin, then)
  }

  /** Records the route's meters when the response finishes; a response that never finishes records nothing. */
  track (req: Request, res: MeteredResponse, meters: Array<CompiledMeter<Request, Response>>, countBytes: boolean): void {
    const bytes = countBytes ? new BodyBytes(res) : undefined
    res.on('finish', () => { this.#finished(req, res, meters, bytes) })
  }

  /** Runs in a `finish` listener, where a throw would crash the process: nothing here throws. */
  #finished (req: Request, res: MeteredResponse, meters: Array<CompiledMeter<Request, Response>>, bytes: BodyBytes | undefined): void {
    const origin = originOf(req)
    let counted: boolean
    try {
      counted = this.#countStatus(res.statusCode)
    } catch (error) {
      if (!this.#countStatusLogged) {
        this.#countStatusLogged = true
        this.#logger.error({ err: error, origin }, 'kinde-metering: countStatus threw; the response was not metered')
      }
      return
    }
    if (!counted) return
    const values: number[] = []
    for (const meter of meters) {
      try {
        values.push(meterValue(meter, req, res, bytes))
      } catch {
        // Recorded as an invalid value: counted and logged once for this route and feature.
        values.push(NaN)
      }
    }
    this.withCustomer(req, origin, customer => {
      for (let i = 0; i < meters.length; i++) this.metering.record(customer, meters[i].feature, values[i], origin)
    })
  }
}

function meterValue (meter: CompiledMeter<Request, Response>, req: Request, res: MeteredResponse, bytes: BodyBytes | undefined): number {
  const value = meter.value
  if (typeof value === 'number') return value
  if (typeof value === 'function') return value(req, res)
  if (value === 'durationMs') return performance.now() - res[kStart]
  if (value === 'responseBytes') return bytes!.read(req, res)
  return Number(req.headers['content-length'] ?? 0)
}

/** `res.meter()`: shared by every response, it finds its adapter through `this`. */
function meterNow (this: MeteredResponse, feature: string, value: number): MeteredResponse {
  const req = this.req
  const origin = originOf(req)
  const adapter = this[kAdapter]!
  adapter.withCustomer(req, origin, customer => adapter.metering.record(customer, feature, value, origin))
  return this
}

/**
 * Creates the metering middleware. Register it before the routes it meters, and before anything
 * whose time `durationMs` should include: `app.use(kindeMetering({ domain, clientId, clientSecret }))`.
 * Call `close()` on shutdown to deliver what is pending.
 * @throws InvalidOptionError when an option is missing or invalid.
 */
export function kindeMetering (options: KindeMeteringOptions): KindeMeteringMiddleware {
  const startSetupCheck = resolveSetupCheck(options)
  const adapter = new ExpressAdapter(options)
  const { metering } = adapter
  const stopSetupCheck = startSetupCheck(options.logger ?? consoleLogger)
  let closing: Promise<CloseOutcome> | undefined
  const middleware = function kindeMeteringMiddleware (_req: Request, res: Response, next: NextFunction): void {
    const metered = res as MeteredResponse
    metered[kAdapter] = adapter
    metered[kStart] = performance.now()
    metered.meter = meterNow
    next()
  }
  return Object.assign(middleware, {
    metering,
    flush: () => metering.flush(),
    stats: () => metering.stats(),
    close: () => (closing ??= stopSetupCheck().then(() => metering.close()))
  })
}

/**
 * Route middleware that meters the route: placed before its handler, it records the meters when the
 * response finishes with a status `countStatus` accepts (default below 400). A response whose
 * client left before it finished is not counted.
 * `app.get('/search', meter('searches'), handler)`,
 * `app.get('/export', meter({ feature: 'egress_bytes', value: 'responseBytes' }), handler)`.
 * @throws InvalidOptionError (option `meter`) when the spec names no feature or has a bad value.
 */
export function meter (spec: RouteMeter): RequestHandler {
  const meters = compileRouteMeter<Request, Response>(spec, 'an Express route', 'meter')
  if (meters.length === 0) throw new InvalidOptionError('meter', 'must name at least one feature')
  const countBytes = meters.some(one => one.value === 'responseBytes')
  let warned = false
  return function kindeMeter (req: Request, res: Response, next: NextFunction): void {
    const adapter = (res as MeteredResponse)[kAdapter]
    if (adapter !== undefined) adapter.track(req, res as MeteredResponse, meters, countBytes)
    else if (!warned) {
      warned = true
      process.emitWarning(`meter() on ${originOf(req)} ran without the kindeMetering middleware: register ` +
        'app.use(kindeMetering(...)) before metered routes; this route is not metered',
      { code: 'KINDE_METERING_NO_MIDDLEWARE' })
    }
    next()
  }
}
