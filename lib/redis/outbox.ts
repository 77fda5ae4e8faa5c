// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * What this instance recorded, on its way into Redis: kept in memory until Redis confirmed the
 * merge, numbered so Redis merges each batch once however often it is sent, retried every
 * `syncInterval` while Redis fails.
 */
import { Aggregator, type UsageBatch } from '../core/usage/aggregator.js'
import type { UsageEntry } from '../core/usage/types.js'
import type { RedisChannel } from './channel.js'
import { encodeEntries } from './codec.js'
import { MERGE_BATCH } from './scripts.js'

/** Pairs per merge script: larger batches are split so no script holds Redis for long. */
export const MERGE_CHUNK = 1000

/** How long Redis remembers an instance's last merged batch number: longer than any outage it rides out. */
const SEEN_TTL = 24 * 60 * 60 * 1000 // 24 h

/** Usage drained from this instance, numbered so Redis merges it once however often it is sent. */
export interface Outgoing {
  number: number
  entries: UsageEntry[]
  oldest: number
}

/** The merges of one instance into the fleet's live hash. */
export class MergeOutbox {
  readonly #redis: RedisChannel
  readonly #keys: readonly [live: string, seen: string]
  readonly #instanceId: string
  readonly #retryEvery: number
  /** Recorded here and not yet sent to Redis. */
  readonly #unsynced = new Aggregator()
  /** Waiting for Redis to confirm, in order: only the first can have been sent. */
  #outbox: Outgoing[] = []
  #merges = 0
  #pushes: Promise<void> = Promise.resolve()
  /** Sends again after a failure, new usage or not. */
  #retry: NodeJS.Timeout | undefined

  constructor (redis: RedisChannel, keys: readonly [live: string, seen: string], instanceId: string, retryEvery: number) {
    this.#redis = redis
    this.#keys = keys
    this.#instanceId = instanceId
    this.#retryEvery = retryEvery
  }

  /** Keeps the batch in memory and sends it, with anything kept earlier, to Redis. Never rejects. */
  add (batch: UsageBatch): Promise<void> {
    this.#unsynced.merge(batch)
    return this.#send()
  }

  /** What is held here: the recorder's sums not yet sent, then the batches Redis did not confirm. */
  held (): { unsynced: Aggregator, outgoing: readonly Outgoing[] } {
    return { unsynced: this.#unsynced, outgoing: this.#outbox }
  }

  /**
   * Stops sending (after the send under way) and hands over what Redis never confirmed: the batch
   * it may have merged without answering, and what it certainly never received.
   */
  async close (): Promise<{ unconfirmed: UsageEntry[], unsent: UsageEntry[] }> {
    await this.#pushes
    clearTimeout(this.#retry)
    const [unconfirmed, ...waiting] = this.#outbox
    this.#outbox = []
    let unsent = this.#unsynced.drain().entries
    for (const outgoing of waiting) unsent = unsent.concat(outgoing.entries)
    return { unconfirmed: unconfirmed?.entries ?? [], unsent }
  }

  #send (): Promise<void> {
    // Sends run one at a time, in order: Redis deduplicates a resent batch by its number.
    this.#pushes = this.#pushes.then(() => this.#push())
    return this.#pushes
  }

  /** Sends what is kept, oldest first, until all is merged or Redis fails. */
  async #push (): Promise<void> {
    for (;;) {
      if (this.#outbox.length === 0) {
        if (this.#unsynced.size === 0) return
        const { entries, oldest } = this.#unsynced.drain()
        for (let i = 0; i < entries.length; i += MERGE_CHUNK) {
          this.#outbox.push({ number: ++this.#merges, entries: entries.slice(i, i + MERGE_CHUNK), oldest })
        }
      }
      const outgoing = this.#outbox[0]
      try {
        await this.#redis.run(MERGE_BATCH, [...this.#keys],
          [outgoing.number, SEEN_TTL, outgoing.oldest, ...encodeEntries(outgoing.entries, this.#instanceId)])
      } catch {
        this.#retry ??= setTimeout(() => {
          this.#retry = undefined
          void this.#send()
        }, this.#retryEvery).unref()
        return
      }
      this.#outbox.shift()
    }
  }
}
