// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * The lease: which instance of the fleet delivers. A take acquires or renews it; while held it
 * is renewed a few times per `leaseTtl`, and released at close so another instance flushes next
 * without waiting for it to expire.
 */
import { ignore, type RedisChannel } from './channel.js'
import { LEASE } from './scripts.js'

/** This instance's hold on the fleet's lease. */
export class Lease {
  readonly #redis: RedisChannel
  readonly #key: string
  readonly #holder: string
  readonly #ttl: number
  #renewal: NodeJS.Timeout | undefined

  constructor (redis: RedisChannel, key: string, holder: string, ttl: number) {
    this.#redis = redis
    this.#key = key
    this.#holder = holder
    this.#ttl = ttl
  }

  /** Whether this instance holds the lease (a take got it and no renewal lost it since). */
  get held (): boolean { return this.#renewal !== undefined }

  /** Holds the lease: renews it a few times per leaseTtl until it is lost or released. */
  lead (): void {
    this.#renewal ??= setInterval(() => { void this.#renew() }, this.#ttl / 3).unref()
  }

  /** Stops renewing: another instance holds the lease, or this one is closing. */
  follow (): void {
    clearInterval(this.#renewal)
    this.#renewal = undefined
  }

  /** Stops renewing and releases the lease. Never rejects: when Redis is unreachable it expires on its own after leaseTtl. */
  async release (): Promise<void> {
    this.follow()
    await this.#redis.run(LEASE, [this.#key], [this.#holder, '0']).catch(ignore)
  }

  async #renew (): Promise<void> {
    // A failed renewal is retried at the next tick; the lease lasts three of them.
    const held = await this.#redis.run(LEASE, [this.#key], [this.#holder, this.#ttl]).catch(ignore)
    if (held === 0) this.follow()
  }
}
