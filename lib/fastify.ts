/**
 * The Fastify plugin: meters routes that declare `config.meter`, gives handlers `reply.meter()`,
 * exposes the core as `app.metering`, and flushes at `onClose`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions, onResponseHookHandler, onSendHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { Transform, type Readable } from 'node:stream'
import { Metering } from './core/metering.js'
import type { MeteringOptions } from './core/options.js'
import type { CustomerRef } from './core/types.js'
import { compileRouteMeter, type CompiledMeter, type RouteMeterSpec } from './route-meter.js'
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

/** Bytes of a streamed response body, counted by the route's onSend wrapper. */
const kResponseBytes = Symbol('kinde-metering.responseBytes')
type CountedReply = FastifyReply & { [kResponseBytes]?: number }

/** Without a `customer` option: the verified access token's organization, else its user. */
function customerFromUser (request: FastifyRequest): CustomerRef | undefined {
  const user = (request as { user?: { org_code?: unknown, sub?: unknown } }).user
  if (user === null || typeof user !== 'object') return undefined
  if (typeof user.org_code === 'string') return { orgCode: user.org_code }
  if (typeof user.sub === 'string') return { userId: user.sub }
  return undefined
}

function responseBytes (reply: CountedReply): number {
  const length = reply.getHeader('content-length')
  if (length !== undefined) return Number(length)
  return reply[kResponseBytes] ?? 0
}

function meterValue (meter: CompiledMeter<FastifyRequest, FastifyReply>, request: FastifyRequest, reply: FastifyReply): number {
  const value = meter.value
  if (typeof value === 'number') return value
  if (typeof value === 'function') return value(request, reply)
  if (value === 'durationMs') return reply.elapsedTime
  if (value === 'responseBytes') return responseBytes(reply)
  return Number(request.headers['content-length'] ?? 0)
}

/** Counts the bytes of stream payloads, whose length Fastify cannot set as a header. */
const countStreamedBytes: onSendHookHandler = (_request, reply, payload, done) => {
  if (typeof (payload as Readable | null | undefined)?.pipe !== 'function') return done(null, payload)
  const counted = reply as CountedReply
  counted[kResponseBytes] = 0
  const counter = new Transform({
    transform (chunk: Buffer, _encoding, callback) {
      counted[kResponseBytes]! += chunk.length
      callback(null, chunk)
    }
  })
  ;(payload as Readable).on('error', error => counter.destroy(error)).pipe(counter)
  done(null, counter)
}

function appendHook<T> (existing: T | T[] | undefined, hook: T): T[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

async function kindeMeteringPlugin (fastify: FastifyInstance, options: KindeMeteringOptions): Promise<void> {
  const startSetupCheck = resolveSetupCheck(options)
  const metering = new Metering({ logger: fastify.log, ...options })
  await metering.ready()
  const stopSetupCheck = startSetupCheck(options.logger ?? fastify.log)
  const { countStatus } = metering.config
  const customerOf = options.customer ?? customerFromUser

  fastify.decorate('metering', metering)
  fastify.decorateReply('meter', function (this: FastifyReply, feature: string, value: number) {
    const origin = this.request.routeOptions.url ?? ''
    metering.withCustomer(customerOf, this.request, origin, customer => metering.record(customer, feature, value, origin))
    return this
  })

  fastify.addHook('onRoute', (route: RouteOptions) => {
    const origin = `${String(route.method)} ${route.url}`
    const meters = compileRouteMeter<FastifyRequest, FastifyReply>(route.config?.meter, origin)
    if (meters.length === 0) return
    const features = meters.map(meter => meter.feature)
    // Only metered routes get a hook: Fastify tracks response timing for every route that has one.
    const recordUsage: onResponseHookHandler = (request, reply, done) => {
      if (countStatus(reply.statusCode)) {
        const values: number[] = []
        for (const meter of meters) {
          try {
            values.push(meterValue(meter, request, reply))
          } catch {
            // Recorded as an invalid value: counted and logged once for this route and feature.
            values.push(NaN)
          }
        }
        metering.withCustomer(customerOf, request, origin, customer => { metering.recordAll(customer, features, values, origin) })
      }
      done()
    }
    route.onResponse = appendHook(route.onResponse, recordUsage)
    if (meters.some(meter => meter.value === 'responseBytes')) route.onSend = appendHook(route.onSend, countStreamedBytes)
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
