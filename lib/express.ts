// lib/: the entry points: the Fastify plugin, the Express middleware, the Redis store, the emulator.
/**
 * The Express middleware (`kinde-metering/express`), on the same core as the Fastify plugin:
 * `app.use(kindeMetering(options))` gives handlers `res.meter()`, and `meter(spec)` placed before a
 * route's handler meters that route when its response finishes. Express is only a type here: this
 * module never loads it.
 * @module
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { InvalidOptionError } from './core/report/errors.js'
import { adapterHooks, withCustomer, type AdapterHooks } from './core/adapter-hooks.js'
import { Metering, type CloseOutcome } from './core/metering.js'
import type { MeteringOptions } from './core/config/options.js'
import type { FlushOutcome, MeteringStats } from './core/report/stats.js'
import { consoleLogger } from './core/report/logger.js'
import type { CustomerRef } from './core/usage/types.js'
import { BodyBytes } from './adapters/body-bytes.js'
import { customerFromClaims, meteredRoute, RequestMeter, type MeteredRoute, type ResponseReads } from './adapters/request-meter.js'
import { compileRouteMeter, type RouteMeterSpec } from './adapters/route-meter.js'
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
       * Present once `app.use(kindeMetering(...))` has seen a request of the app (or of the app it
       * is mounted on).
       */
      meter: (feature: string, value: number) => this
    }
  }
}

/**
 * The adapter of a kindeMetering middleware, kept on the response prototype of the Express app
 * whose requests it sees (Express gives each app its own, `app.response`, which its sub-apps'
 * inherit), or on `res` itself when another middleware already holds that prototype. Own
 * properties set on every `res` made the middleware cost several trivial ones (one: 50,000–80,000
 * more instructions on a 1,000,000-instruction request, three: about 100,000; bench/README.md).
 */
const kAdapter = Symbol('kinde-metering.adapter')
/** On `res`, only while some `meter()` meters `durationMs`: `performance.now()` when the middleware saw the request. */
const kStart = Symbol('kinde-metering.start')

interface MeteredResponse extends Response {
  [kAdapter]?: ExpressAdapter
  [kStart]?: number
}

/** How many `meter()` routes meter `durationMs`: only then does the middleware note when it saw a request. */
let timedRoutes = 0

/** Bounded (one per route and method) so the core's log-once sets stay small. */
function originOf (req: Request): string {
  const route = req.route as { path: unknown } | undefined
  return route === undefined ? `${req.method} *` : `${req.method} ${String(route.path)}`
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}

/** Without a `customer` option: the verified token's claims (see KindeMeteringOptions and {@link customerFromClaims}). */
function customerFromAuth (req: Request): CustomerRef | undefined {
  const { auth, user } = req as { auth?: unknown, user?: unknown }
  return customerFromClaims(isObject(auth) ? (isObject(auth.payload) ? auth.payload : auth) : user)
}

/** The built-in values as an Express request and response give them. */
const expressReads: ResponseReads<Request, MeteredResponse> = {
  method: req => req.method,
  durationMs: (_req, res) => performance.now() - res[kStart]!,
  responseBytes: (_req, res, bodyBytes) => bodyBytes!.read(res),
  requestBytes: req => Number(req.headers['content-length'] ?? 0),
  requestId: requestIdOf
}

/** The id a request-id middleware gave `req.id` (Express has none of its own). */
function requestIdOf (req: Request): string | undefined {
  const id = (req as { id?: unknown }).id
  return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined
}

/** What one kindeMetering middleware needs on the request path. */
class ExpressAdapter {
  readonly metering: Metering
  readonly #customerOf: NonNullable<KindeMeteringOptions['customer']>
  readonly #hooks: AdapterHooks
  readonly #requestMeter: RequestMeter<Request, MeteredResponse>

  constructor (options: KindeMeteringOptions) {
    // The setup check is the adapter's, not a metering option.
    const { checkSetup: _checkSetup, ...meteringOptions } = options
    this.metering = new Metering(meteringOptions)
    this.#customerOf = options.customer ?? customerFromAuth
    this.#hooks = adapterHooks(this.metering)
    this.#requestMeter = new RequestMeter(this.metering, this.#customerOf, expressReads)
  }

  /** Hands the request's customer to `then`; a failing customer function is counted, never thrown. */
  withCustomer (req: Request, origin: string, then: (customer: CustomerRef) => void): void {
    withCustomer(this.#hooks, this.#customerOf, req, origin, then)
  }

  /** Records the route's meters when the response finishes; a response that never finishes records nothing. */
  track (req: Request, res: MeteredResponse, route: MeteredRoute<Request, MeteredResponse>, countBytes: boolean): void {
    const bodyBytes = countBytes ? new BodyBytes(res) : undefined
    res.on('finish', () => { this.#requestMeter.finished(route, originOf(req), req, res, res.statusCode, bodyBytes) })
  }
}

/** `res.meter()`: shared by every response, it finds its adapter through `this`. */
function meterNow (this: MeteredResponse, feature: string, value: number): MeteredResponse {
  const req = this.req
  const origin = originOf(req)
  const adapter = this[kAdapter]!
  adapter.withCustomer(req, origin, customer => adapter.metering.record(customer, feature, value, origin, requestIdOf(req)))
  return this
}

/** A route metered on a request no kindeMetering middleware saw. */
function warnNoMiddleware (req: Request): void {
  process.emitWarning(`meter() on ${originOf(req)} ran without the kindeMetering middleware: register ` +
    'app.use(kindeMetering(...)) before metered routes; this route is not metered',
  { code: 'KINDE_METERING_NO_MIDDLEWARE' })
}

/**
 * Hands the requests of the app whose response prototype `res` has to `adapter`: that prototype
 * gets the adapter and `res.meter()`, and so do the sub-apps mounted on the app (Express makes a
 * mounted app's response prototype inherit from its parent's). A response of no Express app, or
 * of an app another middleware holds, carries them itself.
 */
function claim (res: MeteredResponse, adapter: ExpressAdapter): void {
  const prototype = Object.getPrototypeOf(res) as MeteredResponse
  if (!Object.hasOwn(prototype, 'app') || Object.hasOwn(prototype, kAdapter)) {
    res[kAdapter] = adapter
    res.meter = meterNow
    return
  }
  Object.defineProperty(prototype, kAdapter, { value: adapter, configurable: true, writable: true })
  Object.defineProperty(prototype, 'meter', { value: meterNow, configurable: true, writable: true })
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
  const logger = options.logger ?? consoleLogger
  const stopSetupCheck = startSetupCheck(logger)
  // Express routes are not known here (meter() is its own middleware): the line names no count.
  const summary = metering.summary()
  logger.info(summary, `kinde-metering: metering, delivering to ${summary.domain} every ${summary.flushInterval} ms`)
  let closing: Promise<CloseOutcome> | undefined
  const middleware = function kindeMeteringMiddleware (_req: Request, res: Response, next: NextFunction): void {
    const metered = res as MeteredResponse
    if (metered[kAdapter] !== adapter) claim(metered, adapter)
    if (timedRoutes > 0) metered[kStart] = performance.now()
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
  const meters = compileRouteMeter<Request, MeteredResponse>(spec, 'an Express route', 'meter')
  if (meters.length === 0) throw new InvalidOptionError('meter', 'must name at least one feature')
  const route = meteredRoute(meters)
  const countBytes = meters.some(one => one.value === 'responseBytes')
  const timed = meters.some(one => one.value === 'durationMs')
  if (timed) timedRoutes++
  let warned = false
  return function kindeMeter (req: Request, res: Response, next: NextFunction): void {
    const metered = res as MeteredResponse
    const adapter = metered[kAdapter]
    if (adapter === undefined) {
      if (!warned) warnNoMiddleware(req)
      warned = true
    } else {
      // A request the middleware saw before this route was defined: timed from here.
      if (timed) metered[kStart] ??= performance.now()
      adapter.track(req, metered, route, countBytes)
    }
    next()
  }
}
