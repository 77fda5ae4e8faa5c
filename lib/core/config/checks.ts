// lib/core/config/: options in, one frozen validated configuration out.
/**
 * The one check of a positive number option, so every option (core, journal, Redis store) is
 * refused with the same wording.
 */
import { InvalidOptionError } from '../report/errors.js'

/**
 * `value`, or `fallback` when it is undefined.
 * @param unit what the number counts, for the message (`milliseconds`); none for a plain number.
 * @throws InvalidOptionError naming `name` unless `value` is a finite number above zero.
 */
export function positiveNumber (name: string, value: unknown, fallback: number, unit?: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(name, `must be a positive number${unit === undefined ? '' : ` of ${unit}`}, got ${JSON.stringify(value)}`)
  }
  return value
}

/** {@link positiveNumber}, also refusing a fraction. */
export function positiveInteger (name: string, value: unknown, fallback: number, unit?: string): number {
  const number = positiveNumber(name, value, fallback, unit)
  if (!Number.isInteger(number)) throw new InvalidOptionError(name, `must be a whole number${unit === undefined ? '' : ` of ${unit}`}, got ${number}`)
  return number
}

/** A duration option: {@link positiveNumber} of milliseconds. */
export function milliseconds (name: string, value: unknown, fallback: number): number {
  return positiveNumber(name, value, fallback, 'milliseconds')
}
