// lib/core/journal/: pending usage kept on disk, so a killed process loses none.
/**
 * The take-over of journals left by processes that died: each dead owner's journals are claimed
 * by a rename (so two live processes never take the same one), read, and split into usage to
 * deliver again and usage that was in flight when its owner died.
 */
import { readdir, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeJournal, JournalState, type DecodedJournal } from './format.js'
import { ownedFile, ownerIsGone, type OwnedFile } from './files.js'
import { deltaMicros, type UsageBatch } from '../usage/aggregator.js'
import { addMicros, formatMicros, type Micros } from '../usage/decimal.js'
import type { Undeliverable } from '../report/drops.js'
import type { JournalStats, Tally } from '../report/stats.js'
import type { Logger, UsageEntry } from '../usage/types.js'

/** What a take-over found: usage to deliver, and in-flight usage dropped under `ambiguous: 'drop'`. */
export interface Recovery {
  pending: UsageBatch
  ambiguous: Undeliverable[]
}

const IN_FLIGHT_ERROR = { message: 'in flight when the process that recorded it died: Kinde may or may not have applied it' }

/** A claimed journal's content, with the name it had when its dead owner wrote it. */
export interface ClaimedJournal extends DecodedJournal {
  name: string
}

/** What a claim found, and the files to delete once what they held is in the claimer's journal. */
export interface Claim {
  found: ClaimedJournal[]
  /** The claimed journals, then each dead owner's other files (its lock last). */
  discard: string[]
}

/**
 * Renames the journals of dead owners in `dir` to `owner`'s name (the claim), and reads them.
 * @param nextClaim numbers the claimed files, unique for `owner`.
 */
export async function claimDeadJournals (dir: string, owner: string, staleMs: number, nextClaim: () => number): Promise<Claim> {
  const byOwner = new Map<string, OwnedFile[]>()
  for (const name of await readdir(dir)) {
    const file = ownedFile(name)
    if (file === undefined || file.owner === owner) continue
    const files = byOwner.get(file.owner) ?? []
    files.push(file)
    byOwner.set(file.owner, files)
  }
  // Stryker disable next-line ArrayDeclaration: a path that names no file is removed as nothing (rm with force)
  const claim: Claim = { found: [], discard: [] }
  for (const [deadOwner, files] of byOwner) {
    if (!await ownerIsGone(dir, deadOwner, staleMs)) continue
    // Stryker disable next-line ArrayDeclaration: a path that names no file is removed as nothing (rm with force)
    const leftovers: string[] = []
    for (const file of files) {
      if (file.type !== 'journal') {
        leftovers.push(join(dir, file.name))
        continue
      }
      const claimed = join(dir, `${owner}~${nextClaim()}.journal`)
      try {
        await rename(join(dir, file.name), claimed)
      } catch {
        // Another process claimed it first.
        continue
      }
      claim.discard.push(claimed)
      claim.found.push({ name: file.name, ...decodeJournal(await readFile(claimed, 'utf8')) })
    }
    // The dead owner's lock goes last, after its journals.
    claim.discard.push(...leftovers)
  }
  return claim
}

/** What the claimed journals hold, once copies are set aside. */
export interface TakenOver {
  /** Usage to deliver again (in-flight usage too, unless `dropAmbiguous`). */
  pending: UsageEntry[]
  /** Usage that was in flight when its owner died. */
  inFlight: UsageEntry[]
  /** Ids of the journals read, so a later copy of one is known as such. */
  absorbed: string[]
  /** Journals whose content was taken (copies of another claimed journal are not). */
  journals: number
  /** Lines skipped because a crash cut them short or they were damaged. */
  skippedLines: number
}

/** Reads what `found` holds; a journal whose content another claimed journal already took in is a copy, skipped. */
export function takeOver (found: ClaimedJournal[], dropAmbiguous: boolean, logger: Logger): TakenOver {
  // Stryker disable next-line ArrayDeclaration: an id no journal has makes no journal a copy
  const absorbedElsewhere = new Set(found.flatMap(journal => journal.header?.absorbed ?? []))
  // Stryker disable next-line ArrayDeclaration: an id no journal has, written in a header as absorbed, makes no journal a copy
  const taken: TakenOver = { pending: [], inFlight: [], absorbed: [], journals: 0, skippedLines: 0 }
  for (const journal of found) {
    if (journal.skipped > 0) {
      logger.warn({ file: journal.name, skipped: journal.skipped },
        'kinde-metering: journal lines cut short by a crash or damaged were skipped; the rest is recovered')
    }
    taken.skippedLines += journal.skipped
    if (journal.header !== undefined) taken.absorbed.push(journal.header.id)
    // A copy whose content another claimed journal already took in.
    if (absorbedElsewhere.has(String(journal.header?.id))) continue
    const state = new JournalState()
    for (const line of journal.lines) state.apply(line)
    const split = state.split(dropAmbiguous)
    taken.pending.push(...split.pending)
    taken.inFlight.push(...split.inFlight)
    taken.journals++
  }
  return taken
}

/** Takes in claimed journals for one process, and counts what they held for `stats()`. */
export class TakeOvers {
  readonly #dropAmbiguous: boolean
  readonly #logger: Logger
  readonly #recovered = { journals: 0, pending: { records: 0, micros: 0 as Micros }, ambiguous: { records: 0, micros: 0 as Micros }, skippedLines: 0 }

  /** @param dropAmbiguous true under `ambiguous: 'drop'`: in-flight usage is reported dropped instead of sent again. */
  constructor (dropAmbiguous: boolean, logger: Logger) {
    this.#dropAmbiguous = dropAmbiguous
    this.#logger = logger
  }

  /** What `found` holds: what to deliver and what to drop, and the ids of the journals read. */
  absorb (found: ClaimedJournal[]): { recovery: Recovery, absorbed: string[] } {
    const { pending, inFlight: ambiguous, absorbed, journals, skippedLines } = takeOver(found, this.#dropAmbiguous, this.#logger)
    this.#recovered.journals += journals
    this.#recovered.skippedLines += skippedLines
    const dropped = this.#dropAmbiguous ? ambiguous : []
    const units = count(this.#recovered.pending, pending)
    count(this.#recovered.ambiguous, ambiguous)
    if (found.length > 0) {
      this.#logger.warn({ journals: found.length, records: pending.length, units: formatMicros(units), ambiguous: ambiguous.length, dropped: dropped.length },
        'kinde-metering: took over the journals of processes that died; their usage is delivered with the next flush')
    }
    const recovery = {
      pending: { entries: pending, oldest: pending.reduce((oldest, entry) => Math.min(oldest, entry.at), Infinity) },
      ambiguous: dropped.map(entry => ({ entry, error: IN_FLIGHT_ERROR }))
    }
    return { recovery, absorbed }
  }

  /** What take-overs recovered so far. */
  stats (): JournalStats['recovered'] {
    const { journals, pending, ambiguous, skippedLines } = this.#recovered
    const tally = ({ records, micros }: { records: number, micros: Micros }): Tally => ({ records, units: formatMicros(micros) })
    return { journals, pending: tally(pending), ambiguous: tally(ambiguous), skippedLines }
  }
}

/** Adds `entries` to a tally; returns their total. */
function count (tally: { records: number, micros: Micros }, entries: UsageEntry[]): Micros {
  // A level is not an amount: the units are the sum of the deltas.
  const micros = deltaMicros(entries)
  tally.records += entries.length
  tally.micros = addMicros(tally.micros, micros)
  return micros
}
