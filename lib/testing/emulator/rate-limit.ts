/**
 * The emulator's rate limiter on `/api/*`: a token bucket, as Kinde runs one in front of its API.
 *
 * Deliberately not the package's own limiter (lib/core/delivery/gate.ts): the emulator plays the server a
 * client's pacing is tested against, and a server sharing the client's bucket code would agree
 * with its mistakes instead of catching them.
 * @module
 */

/** Token bucket holding up to one second's worth of requests, refilled continuously. */
export class TokenBucket {
  readonly #rate: number
  readonly #capacity: number
  #tokens: number
  #last = performance.now()

  /** @param requestsPerSecond - the refill rate, and (at least 1) the burst the bucket holds. */
  constructor(requestsPerSecond: number) {
    this.#rate = requestsPerSecond
    this.#capacity = Math.max(1, requestsPerSecond)
    this.#tokens = this.#capacity
  }

  /**
   * Takes a token for one request.
   * @returns undefined when the request may pass; else the whole seconds (at least 1) until a
   * token is back, as sent in `RateLimit-Reset`.
   */
  take(): number | undefined {
    const now = performance.now()
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#last) / 1000) * this.#rate)
    this.#last = now
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return undefined
    }
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.#rate))
  }
}
