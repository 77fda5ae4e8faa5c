// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * The Redis store: every instance of a fleet merges its sums into one Redis hash, and the one
 * instance holding the lease delivers them, so Kinde sees one record per (customer, feature) per
 * flush interval for the whole fleet instead of one per instance.
 *
 * What each instance recorded stays in its memory until Redis confirmed the merge; a take renames
 * the live hash to a snapshot, so usage merged during a flush lands in the next one; a snapshot
 * stays listed as in flight until its take settles, so the next lease holder finds and delivers
 * what a holder that died mid-flush left behind.
 */
import { randomUUID } from 'node:crypto'
import { deltaMicros, type UsageBatch } from '../core/usage/aggregator.js'
import { formatMicros } from '../core/usage/decimal.js'
import { InvalidOptionError } from '../core/report/errors.js'
import type { StoreContext, StorePending, UsageStore } from '../core/store/usage-store.js'
import type { UsageEntry } from '../core/usage/types.js'
import { RedisChannel } from './channel.js'
import { decodeHash, encodeEntries, fieldsOf } from './codec.js'
import { Lease } from './lease.js'
import { MergeOutbox } from './outbox.js'
import { SETTLE, TAKE, type ScriptClient } from './scripts.js'

/** The validated settings of a {@link RedisStore}. */
export interface RedisStoreConfig {
  readonly client: ScriptClient
  readonly prefix: string
  readonly syncInterval: number
  readonly leaseTtl: number
  readonly timeout: number
}

/** A take under way, until it settles. */
interface Take {
  id: string
  /** The snapshot number each taken entry came from. */
  from: Map<UsageEntry, string>
  leftover: UsageEntry[]
  oldest: number
  /** Whether it claimed any snapshot (else there is nothing to settle). */
  owns: boolean
  /** Whether a settle was sent before (and may have run without answering). */
  settling: boolean
}

/** Pending usage shared by a fleet through Redis. Create it with `redisStore()`. */
export class RedisStore implements UsageStore {
  /** Milliseconds between merges of this instance's sums into Redis. */
  readonly syncInterval: number
  /** Always true: what this store holds belongs to the fleet, not to this instance. */
  readonly shared = true
  /** Random id of this instance in Redis (the lease holds it). */
  readonly instanceId = randomUUID()

  readonly #redis: RedisChannel
  readonly #leaseTtl: number
  readonly #keys: { live: string, lease: string, inflight: string, seq: string, seen: string, snapshot: string }
  #context = undefined as unknown as StoreContext
  #attached = false
  readonly #outbox: MergeOutbox
  readonly #lease: Lease
  #takes = 0
  #take: Take | undefined
  /** A take whose settle Redis did not confirm: settled again before the next take. */
  #unsettled: Take | undefined
  readonly #recovered = { snapshots: 0, entries: 0 }

  constructor (config: RedisStoreConfig) {
    this.#redis = new RedisChannel(config.client, config.timeout)
    this.syncInterval = config.syncInterval
    this.#leaseTtl = config.leaseTtl
    const prefix = config.prefix
    this.#keys = {
      live: `${prefix}live`,
      lease: `${prefix}lease`,
      inflight: `${prefix}inflight`,
      seq: `${prefix}seq`,
      seen: `${prefix}seen:${this.instanceId}`,
      snapshot: `${prefix}snapshot:`
    }
    this.#outbox = new MergeOutbox(this.#redis, [this.#keys.live, this.#keys.seen], this.instanceId, this.syncInterval)
    this.#lease = new Lease(this.#redis, this.#keys.lease, this.instanceId, this.#leaseTtl)
  }

  /** Whether this instance holds the lease: it delivers the fleet's usage. */
  get isLeader (): boolean { return this.#lease.held }

  /** False from a failed Redis command until one succeeds again. */
  get isAvailable (): boolean { return this.#redis.available }

  /**
   * Usage recovered from flushes that other instances took and never finished (they stopped, or
   * lost the lease mid-flush): snapshots and entries. Delivered again under `ambiguous: 'retry'`,
   * so what those instances had in flight may count twice; dropped with reason `ambiguous` under
   * `'drop'`, except absolute values (sending one twice cannot count it twice), merged back.
   */
  get recovered (): { snapshots: number, entries: number } { return { ...this.#recovered } }

  /**
   * Takes the core's logger, `ambiguous` policy and drop path.
   * @throws InvalidOptionError when another metering instance already uses this store.
   */
  attach (context: StoreContext): void {
    if (this.#attached) {
      throw new InvalidOptionError('store', 'is already used by another kinde-metering instance: give each one its own redisStore()')
    }
    this.#attached = true
    this.#context = context
    this.#redis.logger = context.logger
  }

  /** Keeps the batch in memory and sends it, with anything kept earlier, to Redis. Never rejects. */
  add (batch: UsageBatch): Promise<void> {
    return this.#outbox.add(batch)
  }

  /**
   * Takes the fleet's usage when this instance holds (or can take) the lease, and whatever
   * earlier takes left in flight; `undefined` when another instance holds it or Redis is
   * unavailable. Never rejects.
   */
  async take (): Promise<UsageBatch | undefined> {
    if (this.#unsettled !== undefined && !await this.#settle(this.#unsettled)) return undefined
    const id = `${this.instanceId}:${++this.#takes}`
    const adopt = this.#context.ambiguous === 'retry'
    let reply: Array<string | number | string[]> | null
    try {
      reply = await this.#redis.run(TAKE, [this.#keys.lease, this.#keys.live, this.#keys.inflight, this.#keys.seq],
        [this.instanceId, id, this.#leaseTtl, adopt ? '1' : '0']) as typeof reply
    } catch {
      return undefined
    }
    if (reply === null) {
      this.#lease.follow()
      return undefined
    }
    this.#lease.lead()
    const take: Take = { id, from: new Map(), leftover: [], oldest: Infinity, owns: false, settling: false }
    const entries: UsageEntry[] = []
    let oldest = Infinity
    let orphaned: UsageEntry[] = []
    for (let i = 0; i < reply.length; i += 3) {
      const number = String(reply[i])
      const certain = reply[i + 1] === 1
      const snapshot = decodeHash(reply[i + 2] as string[])
      if (!certain) {
        this.#recovered.snapshots++
        this.#recovered.entries += snapshot.entries.length
        orphaned = orphaned.concat(snapshot.entries)
        if (!adopt) continue
      }
      take.owns = true
      for (const entry of snapshot.entries) {
        take.from.set(entry, number)
        entries.push(entry)
      }
      oldest = Math.min(oldest, snapshot.oldest)
    }
    this.#take = take
    if (orphaned.length > 0) this.#reportOrphaned(orphaned, adopt)
    return { entries, oldest }
  }

  /** Forgets settled (delivered or dropped) entries in Redis at once, so a successor never handles them again. */
  settledEntries (entries: UsageEntry[]): void {
    const from = this.#take!.from
    const fields = new Map<string, string[]>()
    for (const entry of entries) {
      const key = this.#keys.snapshot + from.get(entry)!
      fields.set(key, (fields.get(key) ?? []).concat(fieldsOf(entry)))
    }
    // Not awaited and not retried: a lost HDEL only means that, should this instance die before
    // it settles, its successor delivers the record again (at-least-once, as documented).
    for (const [key, names] of fields) this.#redis.forget(key, names)
  }

  /** Keeps what was not delivered, to merge back into Redis when the take settles. */
  putBack (batch: UsageBatch): void {
    const take = this.#take!
    take.leftover = take.leftover.concat(batch.entries)
    take.oldest = Math.min(take.oldest, batch.oldest)
  }

  /**
   * Deletes the taken snapshots and merges what was put back into Redis, in one step. When Redis
   * does not confirm, the take is kept and settled again before the next one. Never rejects.
   */
  async settle (): Promise<void> {
    const take = this.#take!
    this.#take = undefined
    if (take.owns) await this.#settle(take)
  }

  /** What this instance holds in memory: not yet merged into Redis, or put back and not yet settled. */
  pending (): StorePending {
    const { unsynced, outgoing } = this.#outbox.held()
    let keys = unsynced.size
    let micros = unsynced.total()
    let oldest = unsynced.oldest
    const held = this.#unsettled === undefined ? outgoing : [...outgoing, { entries: this.#unsettled.leftover, oldest: this.#unsettled.oldest }]
    for (const batch of held) {
      keys += batch.entries.length
      micros = deltaMicros(batch.entries, micros)
      oldest = Math.min(oldest, batch.oldest)
    }
    return { keys, micros, oldest }
  }

  /**
   * Stops renewing the lease and releases it, so another instance flushes next without waiting
   * for it to expire. Usage Redis never received is reported dropped with reason `shutdown`, and
   * usage it may have received without confirming it with reason `ambiguous`. Never closes the
   * client.
   */
  async close (): Promise<void> {
    this.#lease.follow()
    const { unconfirmed, unsent } = await this.#outbox.close()
    await this.#lease.release()
    if (unconfirmed.length > 0) {
      this.#context.drop(unconfirmed, 'ambiguous', { message: 'Redis did not confirm this merge before close: another instance may deliver it' })
    }
    if (unsent.length > 0) this.#context.drop(unsent, 'shutdown', { message: 'Redis was unreachable until close' })
  }

  async #settle (take: Take): Promise<boolean> {
    const retried = take.settling
    take.settling = true
    let owned: unknown
    try {
      owned = await this.#redis.run(SETTLE, [this.#keys.inflight, this.#keys.live], [take.id, take.oldest, ...encodeEntries(take.leftover, this.instanceId)])
    } catch {
      this.#unsettled = take
      return false
    }
    this.#unsettled = undefined
    // Not owned on a retry may only mean that the earlier attempt ran: Redis never answered it.
    if (owned === 0 && !retried) {
      this.#context.logger.warn({ records: take.from.size },
        'kinde-metering: another instance took over this flush (this one lost the Redis lease); it delivers again what this one took')
    }
    return true
  }

  #reportOrphaned (entries: UsageEntry[], adopt: boolean): void {
    if (!adopt) {
      // Sending a level again cannot count it twice: it goes back to Redis (latest wins there), not to onDrop.
      const levels = entries.filter(entry => entry.absolute === true)
      if (levels.length > 0) void this.add({ entries: levels, oldest: levels.reduce((oldest, entry) => Math.min(oldest, entry.at), Infinity) })
      const sums = entries.filter(entry => entry.absolute !== true)
      if (sums.length > 0) this.#context.drop(sums, 'ambiguous', { message: 'taken by an instance that stopped mid-flush: it may have been delivered' })
      return
    }
    this.#context.logger.warn({ records: entries.length, units: formatMicros(deltaMicros(entries)) },
      'kinde-metering: delivering usage that an instance took and did not finish delivering (it stopped or lost the Redis lease); ' +
      'what it had in flight may count twice')
  }
}
