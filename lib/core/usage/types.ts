// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * The shapes shared by the core and its adapters: who pays, what was dropped, how to log.
 */
import type { Micros } from './decimal.js'

/**
 * Who pays for a request. Usage is summed under the reference given and resolved to a Kinde
 * customer agreement at flush time, never on the request path:
 * - `agreementId`: billed as is (no look-up);
 * - `customerId`: a Kinde billing customer; one agreements look-up per feature per cache TTL;
 * - `userId`: a Kinde user id (`sub`); one user look-up, then as `customerId`;
 * - `orgCode`: a Kinde organization code (`org_code`); one organization look-up, then as `customerId`.
 *
 * Exactly one kind: a reference naming two (`{ userId, agreementId }`) does not compile, and at
 * run time it is refused, counted in `stats().refused.invalidCustomer` and logged.
 */
export type CustomerRef =
  | { agreementId: string, customerId?: never, userId?: never, orgCode?: never }
  | { customerId: string, agreementId?: never, userId?: never, orgCode?: never }
  | { userId: string, agreementId?: never, customerId?: never, orgCode?: never }
  | { orgCode: string, agreementId?: never, customerId?: never, userId?: never }

/** How `ambiguous` failures (the record may or may not have been applied) are handled. */
export type AmbiguousPolicy = 'retry' | 'drop'

/** Why usage could not be delivered. */
export type DropReason =
  /** Kinde answered 400: the record is invalid (unknown agreement or feature, bad value). */
  | 'rejected'
  /** A send failed in a way that may or may not have been applied, under `ambiguous: 'drop'`. */
  | 'ambiguous'
  /** The customer has no billing customer or no active agreement that includes the feature. */
  | 'no_agreement'
  /** `maxPendingPairs` distinct (customer, feature) pairs were already pending. */
  | 'overflow'
  /** `close()` ran out of `shutdownTimeout` before Kinde accepted it. */
  | 'shutdown'

/** A record that could not be delivered, with every field needed to replay it. */
export interface DroppedRecord {
  /** The customer as the request named it, or `{ agreementId }` once resolved. */
  customer: CustomerRef
  /** The agreement it resolved to, when resolution got that far. */
  agreementId?: string
  /** Kinde billing feature code. */
  feature: string
  /** Exact decimal amount, as it would have been sent in `meter_value`. */
  value: string
  /** Time of the latest usage in this sum (of the value, for an absolute record), ISO 8601 UTC. */
  timestamp: string
  /** True for a value set with `set()`: sent with `meter_type_code: 'absolute'` (it replaces the period's usage). */
  absolute?: true
  /** Kinde's answer, for `rejected` and `ambiguous` drops that had one. */
  error?: { status?: number; body?: unknown; message: string }
}

/** Called with records that will not be delivered, so they can be stored or replayed. */
export type OnDrop = (records: DroppedRecord[], reason: DropReason) => void

/** The pino-compatible subset of a logger that the core writes to (Fastify's `app.log` fits). */
export interface Logger {
  debug (obj: object, msg?: string): void
  info (obj: object, msg?: string): void
  warn (obj: object, msg?: string): void
  error (obj: object, msg?: string): void
}

/** Reference kinds, in the order the aggregator indexes them. */
export enum RefKind { Agreement = 0, Customer = 1, User = 2, Org = 3 }

/** Field name of each reference kind in a {@link CustomerRef}, indexed by {@link RefKind}. */
export const REF_FIELDS = ['agreementId', 'customerId', 'userId', 'orgCode'] as const

/** Pending usage of one (customer reference, feature) pair, as it moves from recording to delivery. */
export interface UsageEntry {
  /** Which kind of reference `id` is. */
  kind: RefKind
  /** The reference's identifier (agreement id, customer id, user id or org code). */
  id: string
  /** Kinde billing feature code. */
  feature: string
  /** Summed amount; for an absolute entry, the value set. */
  micros: Micros
  /** Epoch ms of the latest usage in the sum (when the value was set, if absolute): sent as `meter_usage_timestamp`. */
  at: number
  /** True for a value set with `set()` (Kinde's `absolute`): the latest replaces the others instead of adding to them. */
  absolute?: true
  /**
   * For an absolute entry in a shared store: the instance that set it. Two values of a pair set
   * in the same millisecond by different instances are ordered by it, so every instance agrees
   * which one is the latest.
   */
  origin?: string
}

/** Builds the {@link CustomerRef} for an entry's kind and id. */
export function refOf (kind: RefKind, id: string): CustomerRef {
  return { [REF_FIELDS[kind]]: id } as unknown as CustomerRef
}
