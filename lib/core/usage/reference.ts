// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * Reads a {@link CustomerRef} and a feature code handed in by the app into the (kind, id) the
 * aggregator indexes, or refuses them.
 */
import { RefKind, REF_FIELDS, type CustomerRef } from './types.js'

/** Longest identifier or feature code accepted from a request; longer ones are refused, not stored. */
export const MAX_REFERENCE_LENGTH = 256

/**
 * The reference kind and id of `customer`, when it names one (an agreement first, then a user,
 * an organization, a customer) and both its id and `feature` are strings of 1 to
 * {@link MAX_REFERENCE_LENGTH} characters; `undefined` otherwise.
 */
export function referenceOf (customer: CustomerRef, feature: string): { kind: RefKind, id: string } | undefined {
  if (customer === null || typeof customer !== 'object') return undefined
  const fields = customer as Partial<Record<string, unknown>>
  const kind = fields.agreementId !== undefined
    ? RefKind.Agreement
    : fields.userId !== undefined ? RefKind.User : fields.orgCode !== undefined ? RefKind.Org : RefKind.Customer
  const id = fields[REF_FIELDS[kind]]
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REFERENCE_LENGTH ||
    typeof feature !== 'string' || feature.length === 0 || feature.length > MAX_REFERENCE_LENGTH) return undefined
  return { kind, id }
}
