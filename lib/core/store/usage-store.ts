// lib/core/store/: where pending usage waits between flushes, and the protocol every store follows.
/**
 * Where pending usage waits between recording and delivery. The core and the adapters see only
 * this interface: the in-memory store (the default) keeps it in this process; a shared store
 * (Redis, for a fleet) merges every instance's sums and lets one instance at a time deliver them.
 */
import { Aggregator, deltaMicros, type UsageBatch } from '../usage/aggregator.js'
import type { Micros } from '../usage/decimal.js'
import type { AmbiguousPolicy, DroppedRecord, DropReason, Logger, UsageEntry } from '../usage/types.js'
import { keyed, OpenTake, type Take, type TakeLedger, type TakenEntry } from './take.js'

export type { Take, TakeLedger, TakenEntry }

/** What a store holds, for `stats()`. */
export interface StorePending {
  /** Distinct (customer, feature) pairs. */
  pairs: number
  /** Total amount (levels set with `set()` are not amounts and count 0). */
  micros: Micros
  /** Epoch ms of the earliest usage held; `Infinity` when empty. */
  oldest: number
}

/** What the core lends a store: see {@link UsageStore.attach}. */
export interface StoreContext {
  /** The core's logger (the app's logger under the Fastify plugin). */
  readonly logger: Logger
  /** The core's `ambiguous` option, for usage the store finds that may already have been delivered. */
  readonly ambiguous: AmbiguousPolicy
  /**
   * Reports usage the store will not deliver: counted in `stats().dropped`, logged and handed to
   * `onDrop`, as the core's own drops are.
   */
  drop (entries: UsageEntry[], reason: DropReason, error?: DroppedRecord['error']): void
}

/**
 * Keeps pending usage between flushes. The protocol, as the core follows it:
 * 1. {@link UsageStore.attach} once, before anything else;
 * 2. {@link UsageStore.add} with what this process recorded, every {@link UsageStore.syncInterval}
 *    (or the journal's, when shorter) and before each flush;
 * 3. a flush calls {@link UsageStore.take}; while the take is open no other take starts. Each
 *    key of the take is then named once in `delivered`, `dropped` or `putBack` (see
 *    {@link TakeLedger}), always with the take's id, and {@link UsageStore.settle} ends it;
 * 4. {@link UsageStore.close} once, after the last take settled.
 * Entries are never passed back: a store may hand out copies and find its own by key.
 */
export interface UsageStore extends TakeLedger {
  /**
   * How often, in ms, the core hands this store what it recorded locally; `Infinity`: only at
   * each flush (enough when the store lives in the same process).
   */
  readonly syncInterval: number
  /**
   * True when other instances share what this store holds: `close()` then leaves what it could
   * not deliver in the store for them instead of reporting it dropped.
   */
  readonly shared: boolean
  /** Called once by the core that uses this store, before any other method. */
  attach (context: StoreContext): void
  /** Takes usage drained from this process's recorder. */
  add (batch: UsageBatch): void | Promise<void>
  /**
   * Opens a take of the usage to deliver now; resolves `undefined` when another instance
   * delivers this round (only a `shared` store can answer so). Until it settles, the taken usage
   * is in flight. A store that is not shared always answers with a take, empty or not.
   */
  take (): Promise<Take | undefined>
  /** What is pending now; called every `syncInterval` and at each flush, so it should not walk every pair (a shared store may answer with its latest known figures). */
  pending (): StorePending
  /** Releases what the store holds open (never the user's own clients). */
  close (): Promise<void>
}

/** The default store: pending usage in this process's memory. */
export class MemoryStore implements UsageStore {
  /** Always `Infinity`: the store is in this process, so the flush's own move into it is enough. */
  readonly syncInterval = Infinity
  /** Always false: what this store holds is this process's alone. */
  readonly shared = false
  readonly #pending = new Aggregator()
  /** The deltas held, kept beside the aggregator so that `pending()` never walks it. */
  #micros: Micros = 0
  #takes = 0
  /** The open take, to put back what was not delivered. */
  readonly #open = new OpenTake()

  /** Nothing to borrow: the core reports what this store holds. */
  attach (_context: StoreContext): void {}

  add (batch: UsageBatch): void {
    this.#pending.merge(batch)
    this.#micros = deltaMicros(batch.entries, this.#micros)
  }

  async take (): Promise<Take> {
    const { entries, oldest } = this.#pending.drain()
    this.#micros = 0
    // Stryker disable next-line UpdateOperator: counting down names the takes just as uniquely
    const take = { id: String(++this.#takes), entries: keyed(entries), oldest }
    this.#open.follow(take)
    return take
  }

  /** Nothing to forget: what a take holds left this store when it was taken. */
  delivered (_take: string, _keys: readonly string[]): void {}

  /** Nothing to forget: what a take holds left this store when it was taken. */
  dropped (_take: string, _keys: readonly string[]): void {}

  putBack (_take: string, keys: readonly string[]): void {
    const entries = this.#open.entries(keys)
    this.#pending.merge({ entries, oldest: this.#open.oldest }, true)
    this.#micros = deltaMicros(entries, this.#micros)
  }

  // Stryker disable next-line BlockStatement: frees the settled take's entries now rather than at the next take's follow(); nothing observable but memory
  settle (_take: string): void {
    this.#open.end()
  }

  pending (): StorePending {
    return { pairs: this.#pending.size, micros: this.#micros, oldest: this.#pending.oldest }
  }

  /** Nothing held open. */
  async close (): Promise<void> {}
}
