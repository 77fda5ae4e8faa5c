// lib/: the entry points: the Fastify plugin, the Express middleware, the Redis store, the emulator.
/**
 * The Fastify plugin: meters routes that declare `config.meter`, gives handlers `reply.meter()`,
 * exposes the core as `app.metering`, and flushes at `onClose`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions, onResponseHookHandler, onSendHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Transform, type Readable } from 'node:stream'
import { adapterHooks, withCustomer } from './core/adapter-hooks.js'
import { Metering } from './core/metering.js'
import type { MeteringOptions } from './core/config/options.js'
import type { CustomerRef } from './core/usage/types.js'
import { BodyBytes } from './adapters/body-bytes.js'
import { customerFromClaims, meteredRoute, RequestMeter, type ResponseReads } from './adapters/request-meter.js'
import { compileRouteMeter, type RouteMeterSpec } from './adapters/route-meter.js'
import { resolveSetupCheck, type SetupCheckOption } from './doctor/startup.js'

/** What a route meters in `config.meter`: a feature code, `{ feature, value }`, or a list of them. */
export type RouteMeter = RouteMeterSpec<FastifyRequest, FastifyReply>

/** Options of the Fastify plugin. `customer` defaults to reading `request.user` (see README). */
export interface KindeMeteringOptions extends MeteringOptions<FastifyRequest>, SetupCheckOption {}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Kinde billing feature(s) this route consumes; counted when the response status passes `countStatus`. */
    meter?: RouteMeter
  }
  interface FastifyReply {
    /** Records `value` units of `feature` for this request's customer, whatever the response status. */
    meter: (feature: string, value: number) => FastifyReply
  }
  interface FastifyInstance {
    /** The metering core: `flush()`, `stats()`, `close()`. */
    metering: Metering
  }
}

/**
 * What a `responseBytes` route's onSend hook left on the reply for its onResponse hook: the final
 * string or Buffer body (its length is the `content-length` Fastify sets), the socket byte counter
 * (a body some later hook may still change, or a stream), or the bytes of a stream counted without
 * a socket (`app.inject()`). A reply decorator, so every reply has it from its constructor on.
 */
const kBodyCount = Symbol('kinde-metering.body')
type BodyCount = string | Buffer | BodyBytes | StreamBytes | null

/** The bytes of a stream body counted as they pass, without a socket. */
class StreamBytes {
  bytes = 0
}
type CountedReply = FastifyReply & { [kBodyCount]: BodyCount }

/** Without a `customer` option: the verified access token in `request.user` (see {@link customerFromClaims}). */
function customerFromUser (request: FastifyRequest): CustomerRef | undefined {
  return customerFromClaims((request as { user?: unknown }).user)
}

/** The built-in values as a Fastify request and reply give them. */
const fastifyReads: ResponseReads<FastifyRequest, FastifyReply> = {
  method: request => request.method,
  durationMs: (_request, reply) => reply.elapsedTime,
  responseBytes: (_request, reply) => {
    const body = (reply as CountedReply)[kBodyCount]
    if (body instanceof BodyBytes) return body.read(reply.raw)
    const length = reply.getHeader('content-length')
    if (length !== undefined) return Number(length)
    // No onSend ran (a hijacked reply) and no content-length was declared: nothing tells the
    // size, so the value is refused as invalid (counted and logged), never guessed.
    if (body === null) return NaN
    if (body instanceof StreamBytes) return body.bytes
    // The final string or Buffer body, sent chunked because of trailers.
    return Buffer.byteLength(body)
  },
  requestBytes: request => Number(request.headers['content-length'] ?? 0),
  requestId: request => request.id
}

/**
 * The onSend hook of a `responseBytes` route. When it is the route's last onSend hook and the
 * body is a string or Buffer, that body is what Fastify writes, with its length as
 * `content-length` (or, with trailers, chunked): nothing needs counting. Otherwise, on a real
 * connection, the bytes are read from the socket, after whatever later hooks (compression) did;
 * without one (`app.inject()`), a stream's chunks are counted as they pass.
 */
function bodyCounter (route: { last: boolean }): onSendHookHandler {
  return (request, reply, payload, done) => {
    const counted = reply as CountedReply
    if (route.last && (typeof payload === 'string' || Buffer.isBuffer(payload))) {
      counted[kBodyCount] = payload
      return done(null, payload)
    }
    // The request's socket is the connection (a pipelined response gets it when its turn comes).
    if (typeof request.raw.socket?.bytesWritten === 'number') {
      counted[kBodyCount] = new BodyBytes(reply.raw)
      return done(null, payload)
    }
    const count = new StreamBytes()
    counted[kBodyCount] = count
    if (typeof (payload as Readable | null | undefined)?.pipe !== 'function') return done(null, payload)
    const counter = new Transform({
      transform (chunk: Buffer, _encoding, callback) {
        count.bytes += chunk.length
        callback(null, chunk)
      }
    })
    ;(payload as Readable).on('error', error => counter.destroy(error)).pipe(counter)
    done(null, counter)
  }
}

function appendHook<T> (existing: T | T[] | undefined, hook: T): T[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

async function kindeMeteringPlugin (fastify: FastifyInstance, options: KindeMeteringOptions): Promise<void> {
  const startSetupCheck = resolveSetupCheck(options)
  // Fastify hands a plugin its own register options too; they are not metering options, nor is the setup check.
  const { prefix: _prefix, logLevel: _logLevel, logSerializers: _logSerializers, checkSetup: _checkSetup, ...meteringOptions } = options as KindeMeteringOptions & Record<'prefix' | 'logLevel' | 'logSerializers', unknown>
  const logger = options.logger ?? fastify.log
  const metering = new Metering({ logger: fastify.log, ...meteringOptions })
  await metering.ready()
  const stopSetupCheck = startSetupCheck(logger)
  // fastify-plugin hands the root instance itself to a plugin registered there; an encapsulated
  // scope is an object created from its parent's.
  if (Object.getPrototypeOf(fastify) !== Object.prototype) {
    logger.warn({ prefix: fastify.prefix },
      `kinde-metering: registered inside an encapsulated scope${fastify.prefix === '' ? '' : ` (prefix "${fastify.prefix}")`}: ` +
      'only routes added in this scope after it are metered, and reply.meter and app.metering exist only there; ' +
      'routes outside it are not metered, even with config.meter. Register kinde-metering on the root instance to meter every route')
  }
  const customerOf = options.customer ?? customerFromUser
  const hooks = adapterHooks(metering)

  fastify.decorate('metering', metering)
  fastify.decorateReply(kBodyCount, null)
  fastify.decorateReply('meter', function (this: FastifyReply, feature: string, value: number) {
    const request = this.request
    // The format of route meters' origins (`GET /a`), so one route logs under one name.
    const origin = `${request.method} ${request.routeOptions.url ?? ''}`
    withCustomer(hooks, customerOf, request, origin, customer => metering.record(customer, feature, value, origin, request.id))
    return this
  })

  const requestMeter = new RequestMeter(metering, customerOf, fastifyReads)
  /** The `config` of each metered GET route and its url: the HEAD route Fastify copies from it shares both. */
  const getRoutes = new WeakMap<object, string>()
  let meteredRoutes = 0
  /** The routes metering responseBytes, and their onSend hook's state. */
  const byteRoutes: Array<{ route: RouteOptions, onSend: onSendHookHandler, counting: { last: boolean } }> = []
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config as object | undefined
    if (config !== undefined && route.method === 'HEAD' && getRoutes.get(config) === route.url) {
      // Fastify's automatic HEAD route (exposeHeadRoutes) of a metered GET: it serves no body and
      // bills nothing; a HEAD route declared with its own `config.meter` is metered.
      return
    }
    const origin = `${String(route.method)} ${route.url}`
    const meters = compileRouteMeter<FastifyRequest, FastifyReply>(route.config?.meter, origin)
    if (meters.length === 0) return
    meteredRoutes++
    if (route.method === 'GET' || (Array.isArray(route.method) && route.method.includes('GET'))) getRoutes.set(config!, route.url)
    const metered = meteredRoute(meters)
    // A route of several methods logs each request under its own method, as reply.meter does.
    const methodOrigins = Array.isArray(route.method) ? new Map(route.method.map(method => [method, `${method} ${route.url}`])) : undefined
    // Only metered routes get a hook: Fastify tracks response timing for every route that has one.
    const recordUsage: onResponseHookHandler = (request, reply, done) => {
      requestMeter.finished(metered, methodOrigins?.get(request.method) ?? origin, request, reply, reply.statusCode)
      done()
    }
    route.onResponse = appendHook(route.onResponse, recordUsage)
    if (meters.some(meter => meter.value === 'responseBytes')) {
      const counting = { last: false }
      const onSend = bodyCounter(counting)
      route.onSend = appendHook(route.onSend, onSend)
      byteRoutes.push({ route, onSend, counting })
    }
  })

  // At onReady every route is added, and every plugin's onRoute hook has run: the line says how
  // many are metered, and each responseBytes route learns whether a later onSend hook can still
  // change its body.
  fastify.addHook('onReady', async () => {
    for (const { route, onSend, counting } of byteRoutes) {
      const hooks = route.onSend as unknown[]
      counting.last = hooks[hooks.length - 1] === onSend
    }
    const summary = metering.summary()
    logger.info({ ...summary, meteredRoutes },
      `kinde-metering: metering ${meteredRoutes} route(s), delivering to ${summary.domain} every ${summary.flushInterval} ms`)
  })

  fastify.addHook('onClose', async () => {
    await stopSetupCheck()
    await metering.close()
  })
}

/**
 * The Fastify plugin. Register it before the routes it meters:
 * `await app.register(kindeMetering, { domain, clientId, clientSecret, customer })`.
 */
export const kindeMetering = fp(kindeMeteringPlugin, { fastify: '5.x', name: 'kinde-metering' })
