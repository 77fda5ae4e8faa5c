// lib/core/config/: options in, one frozen validated configuration out.
/**
 * Refuses option keys this version does not know, so that a typo (`shutdownTimout`) or an option
 * from another version fails at registration instead of quietly leaving its default in place.
 */
import { InvalidOptionError } from '../report/errors.js'

/** Options renamed since an earlier version, old name to new: the old one is refused, naming the new one. */
const RENAMED: Readonly<Record<string, string>> = { maxPendingKeys: 'maxPendingPairs' }

/**
 * Throws for the first own key of `options` not in `known`, naming it as `prefix` + key and
 * the option it was renamed to, or else the closest known option when one is close enough to be
 * a typo of it.
 * @throws InvalidOptionError naming the unknown key.
 */
export function rejectUnknownKeys (options: object, known: readonly string[], prefix = ''): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    if (Object.hasOwn(RENAMED, key) && known.includes(RENAMED[key])) {
      throw new InvalidOptionError(`${prefix}${key}`, `was renamed to "${prefix}${RENAMED[key]}"`)
    }
    const closest = closestKey(key, known)
    const hint = closest === undefined ? `known options: ${known.join(', ')}` : `did you mean "${prefix}${closest}"?`
    throw new InvalidOptionError(`${prefix}${key}`, `is not an option of kinde-metering; ${hint}`)
  }
}

/** The known key nearest to `key` in edit distance (case aside), if within a third of its length, or a prefix of it. */
function closestKey (key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase()
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const other = candidate.toLowerCase()
    // `flushIntervalMs`, `retryPolicy`: a known option with something added.
    const distance = lower.startsWith(other) || other.startsWith(lower) ? 1 : editDistance(lower, other)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined
}

/** Levenshtein distance: insertions, deletions and substitutions that turn `a` into `b`. */
function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length]
}
