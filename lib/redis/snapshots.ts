// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * A take in Redis: the snapshots it claims (this instance's live hash, renamed, and what takes
 * that never settled left in flight), read back as one entry per key, and its settle, sent in
 * steps of at most {@link MERGE_CHUNK} pairs.
 */
import type { Take, TakenEntry } from '../core/store/take.js'
import { entryKey } from '../core/store/take.js'
import { addMicros } from '../core/usage/decimal.js'
import { isNewer } from '../core/usage/latest.js'
import type { UsageEntry } from '../core/usage/types.js'
import type { RedisChannel } from './channel.js'
import { decodeHash, encodeEntries } from './codec.js'
import { MERGE_CHUNK } from './outbox.js'
import { PREPARE, SETTLE, TAKE } from './scripts.js'

/** The keys a take works on; `snapshot` is the prefix of every snapshot's key. */
export interface TakeKeys {
  readonly lease: string
  readonly live: string
  readonly inflight: string
  readonly seq: string
  readonly snapshot: string
}

/** One snapshot a take claimed, as Redis held it. */
export interface ClaimedSnapshot {
  number: string
  /** True for this instance's own snapshot (certainly not delivered), false for another's. */
  certain: boolean
  entries: UsageEntry[]
  oldest: number
}

/**
 * Claims the lease and the snapshots to deliver; `null` when another instance holds the lease.
 * @throws when Redis fails or does not answer.
 */
export async function claimSnapshots (redis: RedisChannel, keys: TakeKeys, instanceId: string, takeId: string,
  leaseTtl: number, adopt: boolean): Promise<ClaimedSnapshot[] | null> {
  const numbers = await redis.run(PREPARE, [keys.lease, keys.inflight, keys.seq], [instanceId]) as string[] | null
  if (numbers === null) return null
  const reply = await redis.run(TAKE, [keys.lease, keys.live, keys.inflight, ...numbers.map(number => keys.snapshot + number)],
    [instanceId, takeId, leaseTtl, adopt ? '1' : '0', ...numbers]) as Array<string | number | string[]> | null
  if (reply === null) return null
  const claimed: ClaimedSnapshot[] = []
  for (let i = 0; i < reply.length; i += 3) {
    const { entries, oldest } = decodeHash(reply[i + 2] as string[])
    claimed.push({ number: String(reply[i]), certain: reply[i + 1] === 1, entries, oldest })
  }
  return claimed
}

/** A take's entries with the snapshots each key came from. */
export interface SnapshotTake extends Take {
  /** Snapshot numbers per key: a key may be held by several snapshots. */
  readonly from: ReadonlyMap<string, readonly string[]>
  /** Numbers of the snapshots the take owns until it settles. */
  readonly snapshots: readonly string[]
}

/** Sums the claimed snapshots into one entry per key (the latest level, for a level). */
export function takeOf (id: string, snapshots: readonly ClaimedSnapshot[]): SnapshotTake {
  const byKey = new Map<string, TakenEntry>()
  const from = new Map<string, string[]>()
  let oldest = Infinity
  for (const snapshot of snapshots) {
    oldest = Math.min(oldest, snapshot.oldest)
    for (const entry of snapshot.entries) {
      const key = entryKey(entry)
      const held = byKey.get(key)
      from.set(key, [...from.get(key) ?? [], snapshot.number])
      if (held === undefined || (entry.absolute === true && isNewer(entry, held, false))) {
        byKey.set(key, { ...entry, key })
      } else if (entry.absolute !== true) {
        byKey.set(key, { ...held, micros: addMicros(held.micros, entry.micros), at: Math.max(held.at, entry.at) })
      }
    }
  }
  return { id, entries: [...byKey.values()], oldest, from, snapshots: snapshots.map(snapshot => snapshot.number) }
}

/**
 * Ends a take: moves `leftover` back into `live` and deletes the take's snapshots, in steps of at
 * most {@link MERGE_CHUNK} pairs. Resolves whether the take still owned its snapshots.
 * @throws when Redis fails or does not answer (every step can be sent again).
 */
export async function settleSnapshots (redis: RedisChannel, keys: TakeKeys, take: SnapshotTake, leftover: readonly TakenEntry[],
  oldest: number, instanceId: string): Promise<boolean> {
  const snapshotKeys = take.snapshots.map(number => keys.snapshot + number)
  let start = 0
  let final: boolean
  do {
    final = start + MERGE_CHUNK >= leftover.length
    const owned = await redis.run(SETTLE, [keys.inflight, keys.live, ...snapshotKeys],
      [take.id, oldest, final ? '1' : '0', ...take.snapshots, ...encodeEntries(leftover.slice(start, start + MERGE_CHUNK), instanceId)])
    if (owned === 0) return false
    start += MERGE_CHUNK
  } while (!final)
  return true
}
