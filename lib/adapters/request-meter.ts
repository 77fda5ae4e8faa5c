// lib/adapters/: per-request rules both adapters share: which responses count, built-in meters, who pays.
/**
 * The rules of a metered request, shared by the Fastify plugin and the Express middleware so they
 * cannot drift apart: whether a response counts (`countStatus`, which may throw), what each meter's
 * value is (a bodiless response sends 0 bytes, a throwing value function is an invalid value),
 * who pays (the `customer` option, else the verified token's claims), and one clock read for
 * all the meters of a request.
 */
import { adapterHooks, withCustomer, type AdapterHooks } from '../core/adapter-hooks.js'
import type { Metering } from '../core/metering.js'
import type { CustomerOf } from '../core/config/options.js'
import type { CustomerRef } from '../core/usage/types.js'
import type { BodyBytes } from './body-bytes.js'
import type { CompiledMeter } from './route-meter.js'

/** What each host reads from its own request and response objects for the built-in values. */
export interface ResponseReads<Req, Res> {
  /** The request's HTTP method. */
  method: (request: Req) => string
  /** Milliseconds from receiving the request to the finished response. */
  durationMs: (request: Req, response: Res) => number
  /**
   * Body bytes of a response that has a body (never called for HEAD, 204 or 304), with the byte
   * counter the adapter started for it, if any.
   */
  responseBytes: (request: Req, response: Res, bodyBytes: BodyBytes | undefined) => number
  /** The request's `Content-Length`, 0 without one. */
  requestBytes: (request: Req) => number
  /** The request's id, for the log line of a refused value; `undefined` when the host gives none. */
  requestId: (request: Req) => string | undefined
}

/** A route's meters, resolved once when the route is added. */
export interface MeteredRoute<Req, Res> {
  meters: ReadonlyArray<CompiledMeter<Req, Res>>
  /** The meters' features, in their order. */
  features: readonly string[]
}

/** Builds what a route's requests read: its meters and their features, computed once. */
export function meteredRoute<Req, Res> (meters: ReadonlyArray<CompiledMeter<Req, Res>>): MeteredRoute<Req, Res> {
  return { meters, features: meters.map(meter => meter.feature) }
}

/** Whether a response carries no body whatever its headers say: HEAD, 204 No Content, 304 Not Modified. */
export function isBodiless (method: string, statusCode: number): boolean {
  return method === 'HEAD' || statusCode === 204 || statusCode === 304
}

/**
 * Who pays, without a `customer` option: verified token claims bill their organization
 * (`org_code` as `{ orgCode }`), else their user (`sub` as `{ userId }`), else nobody.
 */
export function customerFromClaims (claims: unknown): CustomerRef | undefined {
  if (claims === null || typeof claims !== 'object') return undefined
  const { org_code: orgCode, sub } = claims as { org_code?: unknown, sub?: unknown }
  if (typeof orgCode === 'string') return { orgCode }
  if (typeof sub === 'string') return { userId: sub }
  return undefined
}

/** Records the route meters of finished responses into one metering core. */
export class RequestMeter<Req, Res> {
  readonly #hooks: AdapterHooks
  readonly #customerOf: CustomerOf<Req>
  readonly #countStatus: (statusCode: number) => boolean
  readonly #reads: ResponseReads<Req, Res>

  constructor (metering: Metering, customerOf: CustomerOf<Req>, reads: ResponseReads<Req, Res>) {
    this.#hooks = adapterHooks(metering)
    this.#customerOf = customerOf
    this.#countStatus = metering.config.countStatus
    this.#reads = reads
  }

  /**
   * Records `route`'s meters for a response finished with `statusCode`, if `countStatus` counts it.
   * Runs in response hooks and listeners, where a throw would fail the request or crash the
   * process: nothing here throws, every failure is counted and logged by the core.
   * @param origin the route and method (`GET /search`), for log lines.
   * @param bodyBytes the response's byte counter, when the adapter started one.
   */
  finished (route: MeteredRoute<Req, Res>, origin: string, request: Req, response: Res, statusCode: number, bodyBytes?: BodyBytes): void {
    let counted: boolean
    try {
      counted = this.#countStatus(statusCode)
    } catch (error) {
      this.#hooks.countStatusFailed(error, origin)
      return
    }
    if (!counted) return
    const { meters } = route
    const values: number[] = []
    for (let i = 0; i < meters.length; i++) {
      try {
        values.push(this.#value(meters[i], request, response, statusCode, bodyBytes))
      } catch {
        // Recorded as an invalid value: counted and logged once for this route and feature.
        values.push(NaN)
      }
    }
    withCustomer(this.#hooks, this.#customerOf, request, origin, customer => {
      this.#hooks.recordAll(customer, route.features, values, origin, this.#reads.requestId(request))
    })
  }

  #value (meter: CompiledMeter<Req, Res>, request: Req, response: Res, statusCode: number, bodyBytes: BodyBytes | undefined): number {
    const value = meter.value
    if (typeof value === 'number') return value
    if (typeof value === 'function') return value(request, response)
    if (value === 'durationMs') return this.#reads.durationMs(request, response)
    if (value === 'responseBytes') {
      return isBodiless(this.#reads.method(request), statusCode) ? 0 : this.#reads.responseBytes(request, response, bodyBytes)
    }
    return this.#reads.requestBytes(request)
  }
}
