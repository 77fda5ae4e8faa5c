// lib/core/delivery/: one flush: pending usage to meter usage records, paced, sent and classified.
/**
 * Paces every send to Kinde: a pause that all sends honour after a 429 (Kinde's limits are
 * per application, so the one throttled send speaks for all of them), and an optional
 * client-side token bucket (`maxRequestsPerSecond`), as Kinde advises.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** Decides when the next send may go. */
export class SendGate {
  readonly #ratePerMs: number
  readonly #burst: number
  #tokens: number
  #refilledAt = Date.now()
  #pausedUntil = 0

  /** @param maxRequestsPerSecond budget of sends per second; `undefined` for none. */
  constructor (maxRequestsPerSecond: number | undefined) {
    this.#ratePerMs = maxRequestsPerSecond === undefined ? Infinity : maxRequestsPerSecond / 1000
    // Stryker disable next-line MethodExpression: a burst of one only sends the first second's budget later, which only a timing assertion sees
    this.#burst = maxRequestsPerSecond === undefined ? Infinity : Math.max(1, maxRequestsPerSecond)
    this.#tokens = this.#burst
  }

  /** Epoch ms until which every send is held (0 or past: not paused). */
  get pausedUntil (): number {
    return this.#pausedUntil
  }

  /** Holds every send for `ms` milliseconds from now (extending, never shortening, a pause). */
  pause (ms: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + ms)
  }

  /**
   * Waits until a send may go and takes its place in the budget.
   * @returns false, without waiting, when that moment falls after `deadline` (epoch ms).
   */
  async acquire (deadline: number): Promise<boolean> {
    for (;;) {
      const now = Date.now()
      this.#refill(now)
      // The loop re-checks the budget after every sleep: a sleep cut short only spins, one too long only delays.
      // Stryker disable next-line EqualityOperator,ArithmeticOperator: at exactly one token the wait is 0 either way; a wrong wait length is timing only (see above)
      const openAt = Math.max(this.#pausedUntil, this.#tokens >= 1 ? now : now + (1 - this.#tokens) / this.#ratePerMs)
      if (openAt <= now) {
        this.#tokens -= 1
        return true
      }
      // Stryker disable next-line EqualityOperator: differs only when the opening falls on the deadline's millisecond
      if (openAt > deadline) return false
      // Stryker disable next-line ArithmeticOperator: an overlong sleep overflows Node's timer to 1 ms and the loop re-checks: timing only
      await sleep(openAt - now)
    }
  }

  #refill (now: number): void {
    if (this.#ratePerMs === Infinity) return
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#refilledAt) * this.#ratePerMs)
    this.#refilledAt = now
  }
}
