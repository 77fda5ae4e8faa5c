// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * The latest value set per (customer reference, feature), for absolute meters (`set()`): where
 * the {@link Aggregator} sums deltas, this keeps one value per pair and replaces it. Which value
 * is the latest is decided by {@link isNewer}, the one rule the memory store, the journal's
 * replay and delivery share (the Redis scripts implement the same rule in Lua).
 */
import type { Micros } from './decimal.js'
import { RefKind, type UsageEntry } from './types.js'

/** The value held for one pair. */
interface Latest {
  micros: Micros
  /** Epoch ms the value was set. */
  at: number
  origin: string | undefined
}

/**
 * Whether value `a` is later than `b`: by the time it was set; in the same millisecond, by its
 * origin (the instance that set it, compared as strings) so that a fleet agrees; and from one
 * origin in the same millisecond, `a` wins unless it is being put back (`aPutBack`): a value
 * put back after a failed send was set before anything held meanwhile.
 */
export function isNewer (a: { at: number, origin?: string }, b: { at: number, origin?: string }, aPutBack: boolean): boolean {
  // Stryker disable next-line EqualityOperator: the times differ here, so > and >= agree
  if (a.at !== b.at) return a.at > b.at
  // Stryker disable next-line EqualityOperator: the origins differ here, so > and >= agree
  if (a.origin !== b.origin && a.origin !== undefined && b.origin !== undefined) return a.origin > b.origin
  return !aPutBack
}

/** Latest values per (reference kind, id, feature), nested as the aggregator's sums are. */
export class LatestValues {
  #byKind: Array<Map<string, Map<string, Latest>>> = [new Map(), new Map(), new Map(), new Map()]
  #size = 0
  #oldest = Infinity

  /** Distinct (reference, feature) pairs held. */
  get size (): number { return this.#size }

  /** Epoch ms of the earliest value held; `Infinity` when empty. */
  get oldest (): number { return this.#oldest }

  /**
   * Holds `micros` as the pair's value, replacing the one held whatever its time (in one
   * process the call order is the truth). A pair not yet held is only created while fewer than
   * `capacity` pairs are held; returns false when it was refused for that reason.
   */
  set (kind: RefKind, id: string, feature: string, micros: Micros, at: number, capacity = Infinity): boolean {
    const held = this.#byKind[kind].get(id)?.get(feature)
    if (held !== undefined) {
      held.micros = micros
      held.at = at
      held.origin = undefined
      return true
    }
    if (this.#size >= capacity) return false
    this.#hold(kind, id, feature, { micros, at, origin: undefined })
    return true
  }

  /**
   * Offers an absolute entry: held when the pair holds nothing or something older
   * ({@link isNewer}). `putBack`: the entry failed to send and comes back.
   */
  offer (entry: UsageEntry, putBack: boolean): void {
    const held = this.#byKind[entry.kind].get(entry.id)?.get(entry.feature)
    if (held === undefined) {
      this.#hold(entry.kind, entry.id, entry.feature, { micros: entry.micros, at: entry.at, origin: entry.origin })
    } else if (isNewer(entry, held, putBack)) {
      held.micros = entry.micros
      held.at = entry.at
      held.origin = entry.origin
    }
  }

  /** Appends every value held to `entries` (as absolute entries) and starts afresh. */
  drainInto (entries: UsageEntry[]): void {
    const byKind = this.#byKind
    this.#byKind = [new Map(), new Map(), new Map(), new Map()]
    this.#size = 0
    this.#oldest = Infinity
    for (let kind: RefKind = RefKind.Agreement; kind <= RefKind.Org; kind++) {
      for (const [id, features] of byKind[kind]) {
        for (const [feature, { micros, at, origin }] of features) {
          const entry: UsageEntry = { kind, id, feature, micros, at, absolute: true }
          // Stryker disable next-line ConditionalExpression: an origin set to undefined reads as no origin wherever entries are read (delivery, journal, Redis codec)
          if (origin !== undefined) entry.origin = origin
          entries.push(entry)
        }
      }
    }
  }

  #hold (kind: RefKind, id: string, feature: string, latest: Latest): void {
    const ids = this.#byKind[kind]
    let features = ids.get(id)
    if (features === undefined) {
      features = new Map()
      ids.set(id, features)
    }
    features.set(feature, latest)
    this.#size++
    // Stryker disable next-line EqualityOperator: on equal times both keep the same value
    if (latest.at < this.#oldest) this.#oldest = latest.at
  }
}
