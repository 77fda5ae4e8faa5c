/**
 * Injected faults: which request each rule hits, and what a status fault answers.
 *
 * Probabilistic rules draw from a seeded PRNG, so a run with the same seed hits the same requests.
 * Carrying a fault out (holding, resetting, answering) is the server's part.
 * @module
 */
import { STATUS_CODES } from 'node:http'
import { kindeError, throttled, type Reply } from './reply.js'
import type { Endpoint } from './route.js'
import type { FaultSpec } from './types.js'

/** Fault rules, tried in order; probabilistic ones draw from a seeded PRNG. */
export class FaultRules {
  #rules: Array<{ spec: FaultSpec; remaining: number }> = []
  readonly #random: () => number

  /** @param seed - seed of the PRNG behind probabilistic rules. */
  constructor(seed: number) {
    this.#random = mulberry32(seed)
  }

  /** Adds a rule after the others; it retires after `times` hits. */
  add(spec: FaultSpec): void {
    const remaining = spec.times ?? (spec.probability === undefined ? 1 : Infinity)
    this.#rules.push({ spec: { ...spec }, remaining })
  }

  /** Removes every rule. */
  clear(): void {
    this.#rules = []
  }

  /** The fault that hits a request to `endpoint`, if any; counts the hit against the rule. */
  take(endpoint: Endpoint): FaultSpec | undefined {
    const rule = this.#rules.find((r) =>
      r.remaining > 0 && (r.spec.endpoint ?? 'meter_usage') === endpoint && this.#hits(r.spec))
    if (!rule) return undefined
    rule.remaining -= 1
    return rule.spec
  }

  #hits(spec: FaultSpec): boolean {
    return spec.probability === undefined || this.#random() < spec.probability
  }
}

/**
 * The answer of a status fault: Kinde's error body, its code made from the status's reason phrase.
 * @param fault - a rule of kind `'status'`.
 */
export function faultReply(fault: FaultSpec): Reply {
  const status = fault.status ?? 500
  const headers: Record<string, string> = {}
  if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter)
  if (status === 429) return throttled(fault.rateLimitReset ?? 1, headers)
  const reason = STATUS_CODES[status] ?? 'Error'
  return kindeError(status, reason.toUpperCase().replace(/\W+/g, '_'), reason, headers)
}

/** Small, fast, seedable PRNG (Mulberry32) returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
