// lib/core/journal/: pending usage kept on disk, so a killed process loses none.
/**
 * What the core asks of a journal, and the journal it uses without option `journal`: one that
 * keeps nothing, so the core follows every take the same way with or without one.
 */
import type { JournalStats } from '../report/stats.js'
import type { Take, TakeLedger } from '../store/take.js'
import type { UsageEntry } from '../usage/types.js'
import type { Recovery } from './takeover.js'

/** A journal as the core uses it: it follows every take by key, as the store does (see {@link TakeLedger}). */
export interface UsageJournal extends TakeLedger {
  /** How often, in ms, the core hands the journal what it recorded; `Infinity`: never between flushes. */
  readonly syncInterval: number
  /** Takes over the journals of processes that died; resolves with what they left. Never rejects. */
  recover (): Promise<Recovery>
  /** Journals usage drained from the recorder, before the store gets it. */
  append (entries: UsageEntry[]): void
  /** Follows a take a flush opened. */
  taken (take: Take): void
  /** Marks the entries of a record about to be sent as in flight; resolves once that is durable. */
  sending (take: string, keys: readonly string[]): Promise<void>
  /** Resolves once everything journaled so far is durable. */
  written (): Promise<void>
  /** Stops journaling once nothing is pending. Never rejects. */
  close (): Promise<void>
  /** The journal's counters for `stats()`; `undefined` without a journal. */
  stats (): JournalStats | undefined
}

const nothing = (): void => {}
const done = async (): Promise<void> => {}

/** The journal without option `journal`: it keeps nothing and has nothing to recover. */
export const NO_JOURNAL: UsageJournal = Object.freeze({
  syncInterval: Infinity,
  recover: async () => ({ pending: { entries: [], oldest: Infinity }, ambiguous: [] }),
  append: nothing,
  taken: nothing,
  sending: done,
  delivered: nothing,
  dropped: nothing,
  putBack: nothing,
  settle: nothing,
  written: done,
  close: done,
  stats: () => undefined
})
