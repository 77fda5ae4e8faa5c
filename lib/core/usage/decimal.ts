// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * Exact decimal arithmetic for meter values.
 *
 * Amounts are held as integer micro-units (1 unit = 1,000,000 micros), so decimals with up to six
 * fractional digits sum with no float drift. A sum lives in a plain number while it stays a safe
 * integer (the common case, and the fast one) and moves to a bigint only beyond 2^53 micros
 * (about 9 billion units).
 */

/** An amount in micro-units: a safe integer number, or a bigint once it outgrows one. */
export type Micros = number | bigint

/** Micro-units per unit: six fractional digits. */
export const MICROS_PER_UNIT = 1_000_000

const MAX_SAFE_UNITS = Number.MAX_SAFE_INTEGER / MICROS_PER_UNIT

/**
 * Converts a meter value to micros, rounding past the sixth fractional digit.
 * Returns -1 for anything that cannot be billed: negative, NaN, infinite or not a number.
 */
export function toMicros (value: unknown): Micros {
  if (typeof value !== 'number' || !(value >= 0) || value === Infinity) return -1
  if (value <= MAX_SAFE_UNITS) return Math.round(value * MICROS_PER_UNIT)
  // Beyond 2^53 micros a double has no fractional digits left to keep.
  return BigInt(Math.round(value)) * BigInt(MICROS_PER_UNIT)
}

/** Adds two amounts exactly. */
export function addMicros (a: Micros, b: Micros): Micros {
  if (typeof a === 'number' && typeof b === 'number') {
    const sum = a + b
    if (sum <= Number.MAX_SAFE_INTEGER) return sum
  }
  return BigInt(a) + BigInt(b)
}

/** Subtracts `b` from `a` exactly (callers never let the result go negative). */
export function subtractMicros (a: Micros, b: Micros): Micros {
  if (typeof a === 'number' && typeof b === 'number') return a - b
  const difference = BigInt(a) - BigInt(b)
  return difference <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(difference) : difference
}

/** True when the amount is zero. */
export function isZero (amount: Micros): boolean {
  return amount === 0 || amount === 0n
}

/**
 * Formats an amount as the plain decimal string Kinde expects in `meter_value`:
 * no exponent, no trailing zeros (`1000`, `0.3`, `0.000001`).
 */
export function formatMicros (amount: Micros): string {
  const micros = BigInt(amount)
  const perUnit = BigInt(MICROS_PER_UNIT)
  const whole = micros / perUnit
  const fraction = micros % perUnit
  if (fraction === 0n) return whole.toString()
  return `${whole}.${fraction.toString().padStart(6, '0').replace(/0+$/, '')}`
}

/**
 * Parses a plain decimal string (as `formatMicros` writes it) back to micros.
 * Returns -1 when the text is not a non-negative decimal with at most six fractional digits.
 */
export function parseMicros (text: string): Micros {
  const match = /^(\d+)(?:\.(\d{1,6}))?$/.exec(text)
  if (match === null) return -1
  const micros = BigInt(match[1]) * BigInt(MICROS_PER_UNIT) + BigInt((match[2] ?? '').padEnd(6, '0'))
  return micros <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(micros) : micros
}
