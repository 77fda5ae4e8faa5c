// lib/core/store/: where pending usage waits between flushes, and the protocol every store follows.
/**
 * Where pending usage waits between recording and delivery. The core and the adapters see only
 * this interface: the in-memory store (the default) keeps it in this process; a shared store
 * (Redis, for a fleet) merges every instance's sums and lets one instance at a time deliver them.
 */
import { Aggregator, type UsageBatch } from '../usage/aggregator.js'
import type { Micros } from '../usage/decimal.js'
import type { AmbiguousPolicy, DroppedRecord, DropReason, Logger, UsageEntry } from '../usage/types.js'

/** What a store holds, for `stats()`. */
export interface StorePending {
  /** Distinct (customer, feature) pairs. */
  keys: number
  /** Total amount. */
  micros: Micros
  /** Epoch ms of the earliest usage held; `Infinity` when empty. */
  oldest: number
}

/** What the core lends a store that asks for it: see {@link UsageStore.attach}. */
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

/** Keeps pending usage between flushes. */
export interface UsageStore {
  /**
   * How often, in ms, the core hands this store what it recorded locally. `undefined`: only at
   * each flush (enough when the store lives in the same process).
   */
  readonly syncInterval?: number
  /**
   * True when other instances share what this store holds: `close()` then leaves what it could
   * not deliver in the store for them instead of reporting it dropped.
   */
  readonly shared?: boolean
  /** Takes usage drained from this process's recorder. */
  add (batch: UsageBatch): void | Promise<void>
  /**
   * Takes the usage to deliver now; resolves `undefined` when another instance delivers this
   * round (only a `shared` store can answer so). Until {@link UsageStore.settle}, the taken
   * usage is in flight.
   */
  take (): Promise<UsageBatch | undefined>
  /** Gives back taken usage that was not delivered; a later take() returns it again. */
  putBack (batch: UsageBatch): void | Promise<void>
  /** Ends the current take: every part was delivered, put back or reported as dropped. */
  settle (): void | Promise<void>
  /** What is pending now (a shared store may answer with its latest known figures). */
  pending (): StorePending
  /** Releases what the store holds open (never the user's own clients). */
  close? (): Promise<void>
  /** Called once by the core that uses this store, before any other method. */
  attach? (context: StoreContext): void
  /**
   * Called as soon as these entries of the current take need no more delivery (Kinde accepted
   * their record, or they were reported dropped), before {@link UsageStore.settle}: a shared
   * store can forget them at once, so that an instance dying mid-flush leaves behind only what
   * it had not settled yet.
   */
  settledEntries? (entries: UsageEntry[]): void
}

/** The default store: pending usage in this process's memory. */
export class MemoryStore implements UsageStore {
  readonly #pending = new Aggregator()

  add (batch: UsageBatch): void {
    this.#pending.merge(batch)
  }

  async take (): Promise<UsageBatch> {
    return this.#pending.drain()
  }

  putBack (batch: UsageBatch): void {
    this.#pending.merge(batch, true)
  }

  settle (): void {}

  pending (): StorePending {
    return { keys: this.#pending.size, micros: this.#pending.total(), oldest: this.#pending.oldest }
  }
}
