/**
 * Reads a {@link CustomerRef} and a feature code handed in by the app into the (kind, id) the
 * aggregator indexes, or refuses them.
 */
import { RefKind, REF_FIELDS, type CustomerRef } from './types.js'

/** Longest identifier or feature code accepted from a request; longer ones are refused, not stored. */
export const MAX_REFERENCE_LENGTH = 256

/** Whether `value` is an identifier or feature code a request may hand in: a string of 1 to {@link MAX_REFERENCE_LENGTH} characters. */
export function isReference (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_REFERENCE_LENGTH
}

/**
 * The reference kind of `customer` when it names exactly one kind with a valid id
 * ({@link isReference}); -1 otherwise. A reference naming two kinds (`{ userId, agreementId }`)
 * is refused: billing it to either one would be a guess. Reads fields only, allocates nothing.
 */
export function referenceKind (customer: unknown): RefKind | -1 {
  if (customer === null || typeof customer !== 'object') return -1
  const fields = customer as Partial<Record<string, unknown>>
  let kind: RefKind | -1 = -1
  for (let k = RefKind.Agreement; k <= RefKind.Org; k++) {
    if (fields[REF_FIELDS[k]] === undefined) continue
    if (kind !== -1) return -1
    kind = k
  }
  return kind !== -1 && isReference(fields[REF_FIELDS[kind]]) ? kind : -1
}

/**
 * The reference kind and id of `customer`, when it names exactly one kind with a valid id
 * (see {@link referenceKind}); `undefined` otherwise.
 */
export function referenceOf (customer: CustomerRef): { kind: RefKind, id: string } | undefined {
  const kind = referenceKind(customer)
  if (kind === -1) return undefined
  return { kind, id: (customer as unknown as Record<string, string>)[REF_FIELDS[kind]] }
}

/** What the app handed in, for a log line: a string quoted, anything else with its type (`"5" (string)`, `NaN (number)`). */
export function describeReceived (value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value)} (string)`
  if (value !== null && typeof value === 'object') {
    return Array.isArray(value) ? 'an array' : `an object with ${Object.keys(value).join(', ') || 'no fields'}`
  }
  return `${String(value)} (${value === null ? 'null' : typeof value})`
}
