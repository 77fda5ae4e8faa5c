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
import { InvalidOptionError, KindeMeteringError } from '../core/report/errors.js'
import type { Take, TakenEntry } from '../core/store/take.js'
import type { StoreContext, StorePending, UsageStore } from '../core/store/usage-store.js'
import type { UsageEntry } from '../core/usage/types.js'
import { RedisChannel } from './channel.js'
import { fieldsOf } from './codec.js'
import { Lease } from './lease.js'
import { MergeOutbox } from './outbox.js'
import type { ScriptClient } from './scripts.js'
import { claimSnapshots, settleSnapshots, takeOf, type SnapshotTake, type TakeKeys } from './snapshots.js'

/** The validated settings of a {@link RedisStore}. */
export interface RedisStoreConfig {
  readonly client: ScriptClient
  readonly prefix: string
  readonly syncInterval: number
  readonly leaseTtl: number
  readonly timeout: number
}

/** A take under way, until it settles. */
interface OpenTake {
  take: SnapshotTake
  /** Its entries by key. */
  byKey: Map<string, TakenEntry>
  leftover: TakenEntry[]
  /** Whether a settle was sent before (and may have run without answering). */
  settling: boolean
}

const NOT_ATTACHED = 'kinde-metering: this RedisStore is not in use: pass it as the store option of the Fastify plugin, ' +
  'the Express middleware or new Metering(), which attach it, and use it through them'

/**
 * Pending usage shared by a fleet through Redis. Create it with `redisStore()` and pass it as
 * the `store` option: the core attaches it, and its methods are the core's (see {@link UsageStore}).
 */
export class RedisStore implements UsageStore {
  /** Milliseconds between merges of this instance's sums into Redis. */
  readonly syncInterval: number
  /** Always true: what this store holds belongs to the fleet, not to this instance. */
  readonly shared = true
  /** Random id of this instance in Redis (the lease holds it). */
  readonly instanceId = randomUUID()

  readonly #redis: RedisChannel
  readonly #leaseTtl: number
  readonly #keys: TakeKeys & { seen: string }
  #context: StoreContext | undefined
  readonly #outbox: MergeOutbox
  readonly #lease: Lease
  #takes = 0
  #open: OpenTake | undefined
  /** A take whose settle Redis did not confirm: settled again before the next take. */
  #unsettled: OpenTake | undefined
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
    if (this.#context !== undefined) {
      throw new InvalidOptionError('store', 'is already used by another kinde-metering instance: give each one its own redisStore()')
    }
    this.#context = context
    this.#redis.logger = context.logger
  }

  /**
   * Keeps the batch in memory and sends it, with anything kept earlier, to Redis. Never rejects.
   * @throws KindeMeteringError (`KINDE_METERING_STORE_NOT_ATTACHED`) before the core attached the store.
   */
  add (batch: UsageBatch): Promise<void> {
    this.#attached()
    return this.#outbox.add(batch)
  }

  /**
   * Takes the fleet's usage when this instance holds (or can take) the lease, and whatever
   * earlier takes left in flight; `undefined` when another instance holds it or Redis is
   * unavailable. Never rejects.
   */
  async take (): Promise<Take | undefined> {
    const context = this.#attached()
    if (this.#unsettled !== undefined && !await this.#settle(this.#unsettled)) return undefined
    const id = `${this.instanceId}:${++this.#takes}`
    const adopt = context.ambiguous === 'retry'
    let claimed: Awaited<ReturnType<typeof claimSnapshots>>
    try {
      claimed = await claimSnapshots(this.#redis, this.#keys, this.instanceId, id, this.#leaseTtl, adopt)
    } catch {
      return undefined
    }
    if (claimed === null) {
      this.#lease.follow()
      return undefined
    }
    this.#lease.lead()
    let orphaned: UsageEntry[] = []
    for (const snapshot of claimed.filter(snapshot => !snapshot.certain)) {
      this.#recovered.snapshots++
      this.#recovered.entries += snapshot.entries.length
      orphaned = orphaned.concat(snapshot.entries)
    }
    const take = takeOf(id, adopt ? claimed : claimed.filter(snapshot => snapshot.certain))
    this.#open = { take, byKey: new Map(take.entries.map(entry => [entry.key, entry])), leftover: [], settling: false }
    if (orphaned.length > 0) this.#reportOrphaned(orphaned, adopt)
    return take
  }

  /** Forgets delivered entries in Redis at once, so a successor never delivers them again. */
  delivered (_take: string, keys: readonly string[]): void {
    this.#forget(keys)
  }

  /** Forgets dropped entries in Redis at once: they were reported, and a successor must not handle them again. */
  dropped (_take: string, keys: readonly string[]): void {
    this.#forget(keys)
  }

  /** Keeps what was not delivered, to move back into Redis's live usage when the take settles. */
  putBack (_take: string, keys: readonly string[]): void {
    const open = this.#open!
    for (const key of keys) open.leftover.push(open.byKey.get(key)!)
  }

  /**
   * Deletes the taken snapshots and moves what was put back into Redis's live usage. When Redis
   * does not confirm, the take is kept and settled again before the next one. Never rejects.
   */
  async settle (_take: string): Promise<void> {
    const open = this.#open!
    this.#open = undefined
    if (open.take.snapshots.length > 0) await this.#settle(open)
  }

  /** What this instance holds in memory: not yet merged into Redis, or put back and not yet settled. */
  pending (): StorePending {
    const { unsynced, outgoing } = this.#outbox.held()
    let pairs = unsynced.size
    let micros = unsynced.total()
    let oldest = unsynced.oldest
    const held = this.#unsettled === undefined ? outgoing : [...outgoing, { entries: this.#unsettled.leftover, oldest: this.#unsettled.take.oldest }]
    for (const batch of held) {
      pairs += batch.entries.length
      micros = deltaMicros(batch.entries, micros)
      oldest = Math.min(oldest, batch.oldest)
    }
    return { pairs, micros, oldest }
  }

  /**
   * Stops renewing the lease and releases it, so another instance flushes next without waiting
   * for it to expire. Usage Redis never received is reported dropped with reason `shutdown`, and
   * usage it may have received without confirming it with reason `ambiguous`. Never closes the
   * client.
   */
  async close (): Promise<void> {
    const context = this.#attached()
    this.#lease.follow()
    const { unconfirmed, unsent } = await this.#outbox.close()
    await this.#lease.release()
    if (unconfirmed.length > 0) {
      context.drop(unconfirmed, 'ambiguous', { message: 'Redis did not confirm this merge before close: another instance may deliver it' })
    }
    if (unsent.length > 0) context.drop(unsent, 'shutdown', { message: 'Redis was unreachable until close' })
  }

  async #settle (open: OpenTake): Promise<boolean> {
    const retried = open.settling
    open.settling = true
    let owned: boolean
    try {
      owned = await settleSnapshots(this.#redis, this.#keys, open.take, open.leftover, open.take.oldest, this.instanceId)
    } catch {
      this.#unsettled = open
      return false
    }
    this.#unsettled = undefined
    // Not owned on a retry may only mean that the earlier attempt ran: Redis never answered it.
    if (!owned && !retried) {
      this.#attached().logger.warn({ records: open.take.entries.length },
        'kinde-metering: another instance took over this flush (this one lost the Redis lease); it delivers again what this one took')
    }
    return true
  }

  /** Deletes the fields of these keys from every snapshot of the open take that holds them. */
  #forget (keys: readonly string[]): void {
    const { take, byKey } = this.#open!
    const fields = new Map<string, string[]>()
    for (const key of keys) {
      const names = fieldsOf(byKey.get(key)!)
      for (const number of take.from.get(key)!) {
        const snapshot = this.#keys.snapshot + number
        fields.set(snapshot, (fields.get(snapshot) ?? []).concat(names))
      }
    }
    // Not awaited and not retried: a lost HDEL only means that, should this instance die before
    // it settles, its successor delivers the record again (at-least-once, as documented).
    for (const [snapshot, names] of fields) this.#redis.forget(snapshot, names)
  }

  /** The core's context. @throws KindeMeteringError before the core attached this store. */
  #attached (): StoreContext {
    if (this.#context === undefined) throw new KindeMeteringError('KINDE_METERING_STORE_NOT_ATTACHED', NOT_ATTACHED)
    return this.#context
  }

  #reportOrphaned (entries: UsageEntry[], adopt: boolean): void {
    if (!adopt) {
      // Sending a level again cannot count it twice: it goes back to Redis (latest wins there), not to onDrop.
      const levels = entries.filter(entry => entry.absolute === true)
      if (levels.length > 0) void this.add({ entries: levels, oldest: levels.reduce((oldest, entry) => Math.min(oldest, entry.at), Infinity) })
      const sums = entries.filter(entry => entry.absolute !== true)
      if (sums.length > 0) this.#attached().drop(sums, 'ambiguous', { message: 'taken by an instance that stopped mid-flush: it may have been delivered' })
      return
    }
    this.#attached().logger.warn({ records: entries.length, units: formatMicros(deltaMicros(entries)) },
      'kinde-metering: delivering usage that an instance took and did not finish delivering (it stopped or lost the Redis lease); ' +
      'what it had in flight may count twice')
  }
}
