// lib/core/report/: what the core tells the user: stats, drops, log output and errors.
/**
 * Usage refused before it was recorded (a bad value, feature code or customer, a mixed feature kind, a
 * throwing `customer` or `countStatus` function): counted in `stats().refused` and logged once
 * per origin and feature, never thrown into the request.
 */
import type { Counters } from './stats.js'
import { describeReceived } from '../usage/reference.js'
import type { Logger } from '../usage/types.js'

/** Distinct refusals logged at most; beyond that they are only counted, so a flood of bad input cannot grow memory. */
const LOGGED_AT_MOST = 1000

/** Counts and logs usage refused on the request path. */
export class Refusals {
  readonly #counters: Counters
  readonly #logger: Logger
  readonly #logged = new Set<string>()

  constructor (counters: Counters, logger: Logger) {
    this.#counters = counters
    this.#logger = logger
  }

  /**
   * Counts a recording refused for `message`; logs it once per counter, origin and feature, quoting
   * what was `received` (but for `mixedKinds`, where nothing received is wrong), with the request's
   * id when there is one. The message is built only when logged, never on the request path.
   * Returns false, the refused recording's answer.
   */
  refuse (counter: 'invalidValue' | 'invalidFeature' | 'invalidCustomer' | 'mixedKinds', origin: string, feature: unknown,
    message: string, received: unknown, requestId?: unknown): false {
    this.#counters.refused[counter]++
    const key = `${counter}\n${origin}\n${String(feature)}`
    if (!this.#logged.has(key) && this.#logged.size < LOGGED_AT_MOST) {
      this.#logged.add(key)
      const fields = requestId === undefined ? { origin, feature } : { origin, feature, reqId: requestId }
      const got = counter === 'mixedKinds' ? '' : `, got ${describeReceived(received)}`
      this.#logger.warn(fields, `kinde-metering: usage not recorded: ${message}${got}`)
    }
    return false
  }

  /** Counts a request whose `customer` function threw or rejected; logged once per origin. */
  customerFailed (error: unknown, origin: string): void {
    this.#counters.refused.customerError++
    if (this.#first(`customerError\n${origin}`)) {
      this.#logger.error({ err: error, origin }, 'kinde-metering: the customer function threw; the request was not metered')
    }
  }

  /** Counts a response whose `countStatus` threw: it is not metered. Logged once per origin. */
  countStatusFailed (error: unknown, origin: string): void {
    this.#counters.refused.countStatusError++
    if (this.#first(`countStatusError\n${origin}`)) {
      this.#logger.error({ err: error, origin }, 'kinde-metering: countStatus threw; the response was not metered')
    }
  }

  #first (key: string): boolean {
    if (this.#logged.has(key)) return false
    this.#logged.add(key)
    return true
  }
}
