// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * Usage entries to and from the fields of a Redis usage hash (layout in `scripts.ts`): amounts
 * split at 10^12 micros into an integer low part and a decimal high part, exactly, whatever
 * their size; absolute values as one field of their time, origin and micros.
 */
import type { UsageBatch } from '../core/usage/aggregator.js'
import type { Micros } from '../core/usage/decimal.js'
import type { RefKind, UsageEntry } from '../core/usage/types.js'
import { LOW_BASE } from './scripts.js'

const BIG_BASE = BigInt(LOW_BASE)
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** The field suffix naming an entry's (reference kind, id, feature). */
export function pairOf (entry: UsageEntry): string {
  return JSON.stringify([entry.kind, entry.id, entry.feature])
}

/** The hash fields that hold an entry's pair. */
export function fieldsOf (entry: UsageEntry): string[] {
  const pair = pairOf(entry)
  return entry.absolute === true ? [`a${pair}`] : [`l${pair}`, `h${pair}`, `t${pair}`]
}

/**
 * Script arguments for a merge: quadruples (pair, high, low, at); for an absolute value (pair,
 * 'a', '<at> <origin> <micros>', at).
 * @param origin the instance that set absolute values not yet stamped with one.
 */
export function encodeEntries (entries: UsageEntry[], origin: string): string[] {
  const args: string[] = []
  for (const entry of entries) {
    const micros = entry.micros
    if (entry.absolute === true) {
      args.push(pairOf(entry), 'a', `${entry.at} ${entry.origin ?? origin} ${micros.toString()}`, String(entry.at))
      continue
    }
    let high: string
    let low: string
    if (typeof micros === 'number') {
      const remainder = micros % LOW_BASE
      // micros − remainder is a multiple of LOW_BASE: dividing it is exact, where flooring a quotient may round.
      high = ((micros - remainder) / LOW_BASE).toString()
      low = remainder.toString()
    } else {
      high = (micros / BIG_BASE).toString()
      low = (micros % BIG_BASE).toString()
    }
    args.push(pairOf(entry), high, low, String(entry.at))
  }
  return args
}

/** A pair's fields as read from a hash. */
interface Parts { low: string, high: string, at: string }

/** Reads the flat field/value list of HGETALL on a usage hash back into a batch. */
export function decodeHash (flat: string[]): UsageBatch {
  const pairs = new Map<string, Parts>()
  const entries: UsageEntry[] = []
  let oldest = Infinity
  for (let i = 0; i < flat.length; i += 2) {
    const field = flat[i]
    if (field === 'o') {
      oldest = Number(flat[i + 1])
      continue
    }
    if (field[0] === 'a') {
      entries.push(absoluteEntry(field.slice(1), flat[i + 1]))
      continue
    }
    const pair = field.slice(1)
    let parts = pairs.get(pair)
    if (parts === undefined) {
      parts = { low: '0', high: '0', at: '0' }
      pairs.set(pair, parts)
    }
    if (field[0] === 'l') parts.low = flat[i + 1]
    else if (field[0] === 'h') parts.high = flat[i + 1]
    else parts.at = flat[i + 1]
  }
  for (const [pair, parts] of pairs) {
    const [kind, id, feature] = JSON.parse(pair) as [RefKind, string, string]
    entries.push({ kind, id, feature, micros: micros(parts), at: Number(parts.at) })
  }
  return { entries, oldest }
}

/** An absolute value from its field: `<at> <origin> <micros>`. */
function absoluteEntry (pair: string, value: string): UsageEntry {
  const [kind, id, feature] = JSON.parse(pair) as [RefKind, string, string]
  const [at, origin, digits] = value.split(' ')
  const big = BigInt(digits)
  return { kind, id, feature, micros: big <= MAX_SAFE ? Number(big) : big, at: Number(at), absolute: true, origin }
}

function micros (parts: Parts): Micros {
  if (parts.high === '0') return Number(parts.low)
  const total = BigInt(parts.high) * BIG_BASE + BigInt(parts.low)
  return total <= MAX_SAFE ? Number(total) : total
}
