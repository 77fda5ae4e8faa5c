// lib/core/: the framework-free core: the Metering facade over the folders below.
/**
 * What the adapters (Fastify, Express, their shared per-request rules) reach in the core beyond
 * its public API: recording a request's meters at one clock read, and counting a failing
 * `customer` or `countStatus` function. Kept off the public `Metering` type, where users would
 * take them for API; an adapter finds them through its instance.
 */
import type { CustomerOf } from './config/options.js'
import type { CustomerRef } from './usage/types.js'

/** The core's entry points for adapters. */
export interface AdapterHooks {
  /**
   * Records the meters of one request: `values[i]` units of `features[i]` for `customer`, each
   * exactly as `record()` would, at one instant: on this path the clock read costs as much as
   * the rest of a record, so a request reads it once, not once per meter. `requestId`, the
   * request's id, is logged with a refused value.
   */
  recordAll (customer: CustomerRef, features: readonly string[], values: readonly number[], origin: string, requestId?: string): void
  /** Counts a request whose `customer` function threw or rejected; logged once per origin. */
  customerFailed (error: unknown, origin: string): void
  /** Counts a response whose `countStatus` threw: it is not metered. Logged once per origin. */
  countStatusFailed (error: unknown, origin: string): void
}

const hooksOfMetering = new WeakMap<object, AdapterHooks>()

/** Called by each `Metering` as it is built. */
export function exposeToAdapters (metering: object, hooks: AdapterHooks): void {
  hooksOfMetering.set(metering, hooks)
}

/** The hooks of `metering`; adapters read them once, at registration, not per request. */
export function adapterHooks (metering: object): AdapterHooks {
  return hooksOfMetering.get(metering)!
}

/**
 * Asks an adapter's `customer` function who pays for `request` and hands the answer to `then`
 * (at once, or when its promise resolves); `undefined` leaves the request unmetered. A throw or
 * a rejection is counted and logged, never passed on to the request.
 */
export function withCustomer<Request> (hooks: AdapterHooks, customerOf: CustomerOf<Request>, request: Request, origin: string, then: (customer: CustomerRef) => void): void {
  let customer
  try {
    customer = customerOf(request)
  } catch (error) {
    hooks.customerFailed(error, origin)
    return
  }
  if (customer === undefined) return
  if (typeof (customer as Promise<unknown>).then === 'function') {
    (customer as Promise<CustomerRef | undefined>).then(
      resolved => { if (resolved !== undefined) then(resolved) },
      error => { hooks.customerFailed(error, origin) })
    return
  }
  then(customer as CustomerRef)
}
