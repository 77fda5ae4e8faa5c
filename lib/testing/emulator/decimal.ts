/**
 * The emulator's own exact decimals, for summing the meter values Kinde receives.
 *
 * Deliberately not lib/core/usage/decimal.ts: the emulator is the oracle that tests of the package's
 * arithmetic are judged by, and an oracle sharing that arithmetic would agree with its bugs. So it
 * uses another representation too (a bigint over any scale, where the core uses micro-units).
 * @module
 */

/** A non-negative fixed-point decimal, `units / 10^scale`: exact for any input precision. */
export interface Decimal {
  units: bigint
  scale: number
}

/**
 * Reads a plain decimal such as `'2.50'`.
 * @param text - digits with an optional fractional part; the caller has checked the syntax.
 * @returns the exact value, keeping the scale written.
 */
export function parseDecimal(text: string): Decimal {
  const [whole, fraction = ''] = text.split('.')
  return { units: BigInt(whole + fraction), scale: fraction.length }
}

/**
 * Adds two decimals exactly.
 * @returns the sum at the larger of the two scales.
 */
export function addDecimals(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale)
  const units = a.units * 10n ** BigInt(scale - a.scale) + b.units * 10n ** BigInt(scale - b.scale)
  return { units, scale }
}

/**
 * Writes a decimal the way the emulator reports usage.
 * @returns a plain decimal without trailing fractional zeros: `'1000'`, `'0.3'`.
 */
export function formatDecimal({ units, scale }: Decimal): string {
  const digits = units.toString().padStart(scale + 1, '0')
  const whole = digits.slice(0, digits.length - scale)
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, '')
  return fraction === '' ? whole : `${whole}.${fraction}`
}
