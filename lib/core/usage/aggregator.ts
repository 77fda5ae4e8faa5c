// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * Sums usage per (customer reference, feature) in place, synchronously: the only structure the
 * request path touches. Nested maps (id → feature → counter), one per reference kind, because they
 * cost about a third of a flat map with concatenated keys in time and half in memory (measured
 * when this layout was chosen), and need no key string built per request. Absolute values (`set()`)
 * are held beside the sums, latest per pair ({@link LatestValues}), so every store that holds an
 * aggregator holds both kinds.
 */
import { addMicros, type Micros } from './decimal.js'
import { LatestValues } from './latest.js'
import { RefKind, type UsageEntry } from './types.js'

interface Counter {
  micros: Micros
  /** Epoch ms of the latest usage added. */
  at: number
}

type FeatureCounters = Map<string, Counter>

/** Pending usage drained from an aggregator or held by a store, with the age of its oldest part. */
export interface UsageBatch {
  entries: UsageEntry[]
  /** Epoch ms of the earliest usage in the batch; `Infinity` when it is empty. */
  oldest: number
}

/** In-memory sums per (reference kind, id, feature). */
export class Aggregator {
  #byKind: Array<Map<string, FeatureCounters>> = [new Map(), new Map(), new Map(), new Map()]
  #size = 0
  #oldest = Infinity
  #latest = new LatestValues()

  /** Distinct (reference, feature) pairs held, summed and absolute. */
  get size (): number { return this.#size + this.#latest.size }

  /** Epoch ms of the earliest usage held; `Infinity` when empty. */
  get oldest (): number { return Math.min(this.#oldest, this.#latest.oldest) }

  /**
   * Adds an amount. A pair not yet held is only created while fewer than `capacity` pairs are
   * held; returns false when it was refused for that reason.
   */
  add (kind: RefKind, id: string, feature: string, micros: Micros, at: number, capacity = Infinity): boolean {
    const ids = this.#byKind[kind]
    let features = ids.get(id)
    if (features === undefined) {
      // Stryker disable next-line ConditionalExpression,EqualityOperator,ArithmeticOperator: the pair check below refuses too; this one only spares a refused id an empty map (memory, not results)
      if (this.#size + this.#latest.size >= capacity) return false
      features = new Map()
      ids.set(id, features)
    }
    const counter = features.get(feature)
    if (counter === undefined) {
      if (this.#size + this.#latest.size >= capacity) return false
      features.set(feature, { micros, at })
      this.#size++
      // Stryker disable next-line EqualityOperator: on equal times both keep the same value
      if (at < this.#oldest) this.#oldest = at
    } else {
      counter.micros = addMicros(counter.micros, micros)
      // Stryker disable next-line EqualityOperator: on equal times both keep the same value
      if (at > counter.at) counter.at = at
    }
    return true
  }

  /**
   * Holds an absolute value for a pair (`set()`), replacing the one held. A pair not yet held is
   * only created while fewer than `capacity` pairs are held; returns false when it was refused.
   */
  set (kind: RefKind, id: string, feature: string, micros: Micros, at: number, capacity = Infinity): boolean {
    return this.#latest.set(kind, id, feature, micros, at, capacity - this.#size)
  }

  /**
   * Adds every entry of a batch, whatever the capacity: usage already accepted is never refused.
   * An absolute entry replaces the pair's value only when it is the later one.
   * @param putBack the batch failed to send and comes back: an absolute value held meanwhile
   *   (set since) is kept over it.
   */
  merge (batch: UsageBatch, putBack = false): void {
    for (const entry of batch.entries) {
      if (entry.absolute === true) this.#latest.offer(entry, putBack)
      else this.add(entry.kind, entry.id, entry.feature, entry.micros, entry.at)
    }
    // Stryker disable next-line EqualityOperator: on equal times both keep the same value
    if (batch.oldest < this.#oldest) this.#oldest = batch.oldest
  }

  /**
   * Hands over everything held and starts afresh. The live maps are swapped for new ones rather
   * than copied or locked, so recording never waits for a flush.
   */
  drain (): UsageBatch {
    const byKind = this.#byKind
    const oldest = this.oldest
    this.#byKind = [new Map(), new Map(), new Map(), new Map()]
    this.#size = 0
    this.#oldest = Infinity
    const entries: UsageEntry[] = []
    for (let kind: RefKind = RefKind.Agreement; kind <= RefKind.Org; kind++) {
      for (const [id, features] of byKind[kind]) {
        for (const [feature, counter] of features) {
          entries.push({ kind, id, feature, micros: counter.micros, at: counter.at })
        }
      }
    }
    this.#latest.drainInto(entries)
    return { entries, oldest }
  }

  /** Total amount summed, across all pairs; absolute values are levels, not amounts, and are left out. */
  total (): Micros {
    let total: Micros = 0
    for (const ids of this.#byKind) {
      for (const features of ids.values()) {
        for (const counter of features.values()) total = addMicros(total, counter.micros)
      }
    }
    return total
  }
}

/** `start` plus the sum of the deltas among `entries`: an absolute value is a level, not an amount. */
export function deltaMicros (entries: readonly UsageEntry[], start: Micros = 0): Micros {
  let sum = start
  for (const entry of entries) if (entry.absolute !== true) sum = addMicros(sum, entry.micros)
  return sum
}
