// lib/core/store/: where pending usage waits between flushes, and the protocol every store follows.
/**
 * The check of option `store` at registration: a store of one's own must have every member of
 * {@link UsageStore}, so that one written for an earlier version of the protocol fails there,
 * naming what it lacks, instead of at its first flush.
 */
import { InvalidOptionError } from '../report/errors.js'
import type { UsageStore } from './usage-store.js'

const METHODS = ['attach', 'add', 'take', 'delivered', 'dropped', 'putBack', 'settle', 'pending', 'close'] as const satisfies ReadonlyArray<keyof UsageStore>

/** @throws InvalidOptionError naming `store` and the members it lacks. */
export function checkStore (store: unknown): void {
  if (store === null || typeof store !== 'object') throw new InvalidOptionError('store', `must be a UsageStore (a MemoryStore, redisStore(), or one of your own), got ${typeof store}`)
  const held = store as Record<string, unknown>
  const lacking: string[] = METHODS.filter(name => typeof held[name] !== 'function').map(name => `${name}()`)
  if (typeof held.syncInterval !== 'number') lacking.push('syncInterval (a number of ms)')
  if (typeof held.shared !== 'boolean') lacking.push('shared (a boolean)')
  if (lacking.length === 0) return
  throw new InvalidOptionError('store', `lacks ${lacking.join(', ')}: a store implements every member of UsageStore, ` +
    'whose takes are named by id and their entries by key (settledEntries() became delivered() and dropped())')
}
