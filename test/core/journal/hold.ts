/**
 * A process that journals usage and then waits to be killed: what a crashed server leaves behind.
 *
 * Usage: `node --import tsx test/core/journal/hold.ts <dir> '<steps as JSON>'`. Steps run in
 * order, each awaited until written, as the core would run them:
 * - `{ "append": [[kind, id, feature, micros, at], …] }` usage drained from the recorder
 *   (micros as a string of digits when beyond 2^53; a sixth element `1` for an absolute value);
 * - `{ "take": [[kind, id, feature, micros, at], …] }` a flush took these;
 * - `{ "send": [i, …] }` the taken entries at these indexes are being sent (in flight);
 * - `{ "deliver": [i, …] }` Kinde accepted the taken entries at these indexes;
 * - `{ "settle": [i, …] }` that flush ended; the taken entries at these indexes were put back, the
 *   others neither delivered nor put back were reported dropped.
 * Prints one JSON line `{ "step": i, "stats": … }` per step, then `{ "ready": true }`, and stays
 * alive until killed.
 */
import { Journal } from '../../../lib/core/journal/journal.js'
import { resolveJournalConfig } from '../../../lib/core/config/journal-options.js'
import type { UsageEntry } from '../../../lib/core/usage/types.js'
import { keyed, type Take } from '../../../lib/core/store/take.js'

type Tuple = [number, string, string, number | string, number, 1?]
type Step = { append: Tuple[] } | { take: Tuple[] } | { send: number[] } | { deliver: number[] } | { settle: number[] }

const [dir, stepsJson] = process.argv.slice(2)

const toEntry = ([kind, id, feature, micros, at, absolute]: Tuple): UsageEntry => {
  const entry: UsageEntry = { kind, id, feature, micros: typeof micros === 'string' ? BigInt(micros) : micros, at }
  if (absolute === 1) entry.absolute = true
  return entry
}

const quiet = { debug () {}, info () {}, warn () {}, error () {} }

async function main (): Promise<void> {
  const steps = JSON.parse(stepsJson) as Step[]
  const journal = new Journal(resolveJournalConfig({ dir }, false)!, false, quiet)
  await journal.recover()
  let taken: Take = { id: '0', entries: [], oldest: Infinity }
  let delivered = new Set<number>()
  const keys = (indexes: number[]): string[] => indexes.map(i => taken.entries[i].key)
  for (const [index, step] of steps.entries()) {
    if ('append' in step) {
      journal.append(step.append.map(toEntry))
      await journal.written()
    } else if ('take' in step) {
      taken = { id: String(index), entries: keyed(step.take.map(toEntry)), oldest: Infinity }
      delivered = new Set()
      journal.taken(taken)
    } else if ('send' in step) {
      await journal.sending(taken.id, keys(step.send))
    } else if ('deliver' in step) {
      for (const i of step.deliver) delivered.add(i)
      journal.delivered(taken.id, keys(step.deliver))
      await journal.written()
    } else {
      const putBack = new Set(step.settle)
      journal.dropped(taken.id, keys(taken.entries.map((_, i) => i).filter(i => !putBack.has(i) && !delivered.has(i))))
      journal.putBack(taken.id, keys(step.settle))
      await journal.settle(taken.id)
    }
    process.stdout.write(`${JSON.stringify({ step: index, stats: journal.stats() })}\n`)
  }
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
  setInterval(() => {}, 60_000)
}

// tap also loads this file as a test, without arguments: then it does nothing.
if (stepsJson !== undefined) await main()
