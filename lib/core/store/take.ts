// lib/core/store/: where pending usage waits between flushes, and the protocol every store follows.
/**
 * A take: the usage one flush holds of a store, as a transaction named by its id. Each entry of a
 * take carries a key unique within it, built once by {@link keyed}; everything later said about
 * the take (delivered, dropped, put back, settled) names the take's id and keys, never entry
 * objects, so a store may copy what it hands out, or rebuild it from elsewhere, and still follow.
 */
import type { UsageEntry } from '../usage/types.js'

/** An entry of a take, with the key that names it within the take. */
export interface TakenEntry extends UsageEntry {
  /**
   * Unique within its take: one (reference kind, id, feature) pair and whether it holds a sum or
   * a level (a fleet or a journal may hold both for one pair).
   */
  readonly key: string
}

/** The usage a flush took from a store, until the take settles. */
export interface Take {
  /** Names this take in every later call; unique among the takes of one store. */
  readonly id: string
  /** One entry per key. */
  readonly entries: TakenEntry[]
  /** Epoch ms of the earliest usage in the take; `Infinity` when it is empty. */
  readonly oldest: number
}

/**
 * What became of the entries of a take, told by key: a store and the journal both follow takes
 * this way. Between the take and {@link TakeLedger.settle}, each key is named once, in exactly
 * one of {@link TakeLedger.delivered}, {@link TakeLedger.dropped} and {@link TakeLedger.putBack}.
 */
export interface TakeLedger {
  /** Kinde accepted the record these entries were summed into: they need no more delivery. */
  delivered (take: string, keys: readonly string[]): void
  /** These entries were reported dropped (counted, logged, `onDrop`, dead letter): they need no more delivery. */
  dropped (take: string, keys: readonly string[]): void
  /** These entries were not delivered: pending again, for a later take. */
  putBack (take: string, keys: readonly string[]): void | Promise<void>
  /** Ends the take (this alone is called settling): every key was named in one of the calls above. */
  settle (take: string): void | Promise<void>
}

/**
 * The one function that builds the key of an entry (and of a record, delivery's sum per agreement
 * and feature): sum or level first, then (reference kind, id, feature), the id's length keeping `a` + `bc` apart from `ab` + `c` (a feature code may hold any
 * character, so nothing may follow it).
 */
export function entryKey (entry: Pick<UsageEntry, 'absolute' | 'kind' | 'id' | 'feature'>): string {
  // Stryker disable next-line StringLiteral,EqualityOperator: any two distinct prefixes keep the keys apart (the kind that follows is a digit), and keys never outlive the process
  return `${entry.absolute === true ? 'a' : 's'}${entry.kind}${entry.id.length}:${entry.id}${entry.feature}`
}

/** The entries of a take, each with its key. */
export function keyed (entries: readonly UsageEntry[]): TakenEntry[] {
  return entries.map(entry => ({ ...entry, key: entryKey(entry) }))
}

/** The keys of `entries`, in order. */
export function keysOf (entries: readonly TakenEntry[]): string[] {
  return entries.map(entry => entry.key)
}

/** The entries of the take a store or journal follows, found by key until the take settles. */
export class OpenTake {
  #entries = new Map<string, TakenEntry>()
  #dropped: TakenEntry[] = []
  #oldest = Infinity

  /** Epoch ms of the earliest usage of the take followed. */
  get oldest (): number { return this.#oldest }

  /** Follows `take` from now on, forgetting the one before. */
  follow (take: Take): void {
    this.#entries = new Map(take.entries.map(entry => [entry.key, entry]))
    this.#dropped = []
    this.#oldest = take.oldest
  }

  /** The entries of the take named by `keys`, in order. */
  entries (keys: readonly string[]): TakenEntry[] {
    return keys.map(key => this.#entries.get(key)!)
  }

  /** Sets the entries named by `keys` aside as reported dropped. */
  drop (keys: readonly string[]): void {
    this.#dropped.push(...this.entries(keys))
  }

  /** Forgets the take (it settled); returns the entries set aside as dropped. */
  end (): TakenEntry[] {
    const dropped = this.#dropped
    this.#entries = new Map()
    this.#dropped = []
    return dropped
  }
}
