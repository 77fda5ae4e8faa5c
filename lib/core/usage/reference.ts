// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * Reads a {@link CustomerRef} and a feature code handed in by the app into the (kind, id) the
 * aggregator indexes, or refuses them.
 */
import { RefKind, type CustomerRef } from './types.js'

/** Longest identifier or feature code accepted from a request; longer ones are refused, not stored. */
export const MAX_REFERENCE_LENGTH = 256

/** Whether `value` is an identifier or feature code a request may hand in: a string of 1 to {@link MAX_REFERENCE_LENGTH} characters. */
export function isReference (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_REFERENCE_LENGTH
}

/** The fields of a {@link CustomerRef} as the app may hand them in: anything, or nothing. */
interface RefFields { agreementId?: unknown, customerId?: unknown, userId?: unknown, orgCode?: unknown }

/**
 * The reference kind of `customer` when it names exactly one kind with a valid id
 * ({@link isReference}); -1 otherwise. A reference naming two kinds (`{ userId, agreementId }`)
 * is refused: billing it to either one would be a guess. On the request path: named field reads
 * only, nothing allocated.
 */
export function referenceKind (customer: unknown): RefKind | -1 {
  if (customer === null || typeof customer !== 'object') return -1
  const { agreementId, customerId, userId, orgCode } = customer as RefFields
  const named = (agreementId === undefined ? 0 : 1) + (customerId === undefined ? 0 : 1) + (userId === undefined ? 0 : 1) + (orgCode === undefined ? 0 : 1)
  if (named !== 1) return -1
  if (agreementId !== undefined) return isReference(agreementId) ? RefKind.Agreement : -1
  if (customerId !== undefined) return isReference(customerId) ? RefKind.Customer : -1
  if (userId !== undefined) return isReference(userId) ? RefKind.User : -1
  return isReference(orgCode) ? RefKind.Org : -1
}

/** The id of a reference whose kind {@link referenceKind} found. */
export function referenceId (customer: CustomerRef, kind: RefKind): string {
  const fields = customer as RefFields
  return (kind === RefKind.Agreement ? fields.agreementId : kind === RefKind.Customer ? fields.customerId : kind === RefKind.User ? fields.userId : fields.orgCode) as string
}

/**
 * The reference kind and id of `customer`, when it names exactly one kind with a valid id
 * (see {@link referenceKind}); `undefined` otherwise.
 */
export function referenceOf (customer: CustomerRef): { kind: RefKind, id: string } | undefined {
  const kind = referenceKind(customer)
  if (kind === -1) return undefined
  return { kind, id: referenceId(customer, kind) }
}

/** What the app handed in, for a log line: a string quoted, anything else with its type (`"5" (string)`, `NaN (number)`). */
export function describeReceived (value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)} (string)`
  if (value !== null && typeof value === 'object') {
    return Array.isArray(value) ? 'an array' : `an object with ${Object.keys(value).join(', ') || 'no fields'}`
  }
  return `${String(value)} (${value === null ? 'null' : typeof value})`
}
