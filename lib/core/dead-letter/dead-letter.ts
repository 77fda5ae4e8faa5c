/**
 * The dead letter (option `deadLetter`): every record reported dropped is appended to a file, so
 * usage that could not be delivered is kept on disk until `kinde-metering replay` delivers it.
 *
 * Nothing here runs on the request path: drops are reported from the flush path, and the dead
 * letter only queues their lines there; one write at a time appends them in the background,
 * flushed to the disk. A directory that cannot be written is logged once and counted; the records
 * still reach `onDrop` and the log.
 */
import { rejectUnknownKeys } from '../config/option-keys.js'
import { join, resolve } from 'node:path'
import { addMicros, formatMicros, parseMicros, type Micros } from '../usage/decimal.js'
import { appendDeadLetter, deadLetterFile, deadRecordOf, readDeadLetter, type DeadRecord } from './file.js'
import { InvalidOptionError } from '../report/errors.js'
import { newOwnerId } from '../journal/files.js'
import type { JournalConfig } from '../journal/journal.js'
import type { Tally } from '../report/stats.js'
import type { DroppedRecord, DropReason, Logger } from '../usage/types.js'

/** Option `deadLetter`: where records that could not be delivered are kept. */
export interface DeadLetterOptions {
  /** Directory of the dead-letter files, created if missing. */
  dir: string
}

/** The validated `deadLetter` option. */
export interface DeadLetterConfig {
  /** Absolute path of the directory. */
  readonly dir: string
}

/** The dead letter's part of `stats()`. */
export interface DeadLetterStats {
  /** Absolute path of the directory. */
  dir: string
  /** `open` while writes succeed (or none was needed yet); `failing` after a write failed (retried at the next drop). */
  state: 'open' | 'failing'
  /**
   * Records in the directory not yet replayed, by the reason they were dropped for: those found
   * at start plus those this process added (a replay running meanwhile is seen at the next start).
   */
  byReason: Record<DropReason, Tally>
  /** Records that could not be written (they still went to `onDrop` and the log). */
  writeErrors: number
  /** The latest error's message, starting with its code; null when none. */
  lastError: string | null
}

/** Folder of the journal's directory the dead letter goes to by default. */
const DEAD_LETTER_IN_JOURNAL = 'dead-letter'

/**
 * Validates option `deadLetter`; with `journal` set and `deadLetter` absent, the dead letter is
 * kept in a folder of the journal's directory. `false` turns it off.
 * @throws InvalidOptionError naming `deadLetter` or `deadLetter.dir`.
 */
export function resolveDeadLetterConfig (value: unknown, journal: JournalConfig | undefined): DeadLetterConfig | undefined {
  if (value === false) return undefined
  if (value === undefined) return journal && Object.freeze({ dir: join(journal.dir, DEAD_LETTER_IN_JOURNAL) })
  if (value === null || typeof value !== 'object') throw new InvalidOptionError('deadLetter', 'must be an object such as { dir }, or false')
  rejectUnknownKeys(value, ['dir'], 'deadLetter.')
  const { dir } = value as DeadLetterOptions
  if (typeof dir !== 'string' || dir.length === 0) throw new InvalidOptionError('deadLetter.dir', 'must be a non-empty path')
  return Object.freeze({ dir: resolve(dir) })
}

/** A mutable tally of records and micros per reason. */
type Tallies = Record<DropReason, { records: number, micros: Micros }>

/** Appends dropped records to this process's dead-letter file. */
export class DeadLetter {
  readonly #dir: string
  readonly #file: string
  readonly #logger: Logger
  readonly #tallies: Tallies = {
    rejected: { records: 0, micros: 0 },
    ambiguous: { records: 0, micros: 0 },
    no_agreement: { records: 0, micros: 0 },
    overflow: { records: 0, micros: 0 },
    shutdown: { records: 0, micros: 0 }
  }

  #writing: Promise<void>
  #writeErrors = 0
  #lastError: string | null = null
  #failing = false
  #failureLogged = false

  constructor (config: DeadLetterConfig, logger: Logger) {
    this.#dir = config.dir
    this.#file = deadLetterFile(newOwnerId())
    this.#logger = logger
    // What earlier processes left counts in stats(); a directory that cannot be read shows at the first write.
    this.#writing = readDeadLetter(this.#dir).then(
      contents => { for (const record of contents.records) this.#count(record) },
      () => {})
  }

  /**
   * Queues `records` dropped for `reason`; they are written in the background, in order. Never
   * throws; resolves once they are on disk, or failed to get there (counted and logged).
   */
  append (records: Array<DroppedRecord & { meterType?: string }>, reason: DropReason): Promise<void> {
    const time = new Date().toISOString()
    const lines = records.map(record => deadRecordOf(record, reason, time))
    this.#writing = this.#writing.then(() => this.#write(lines))
    return this.#writing
  }

  /** Resolves once everything appended so far is on disk, or failed to get there (counted and logged). */
  written (): Promise<void> {
    return this.#writing
  }

  /** A snapshot for `stats()`. */
  stats (): DeadLetterStats {
    const byReason = {} as Record<DropReason, Tally>
    for (const reason of Object.keys(this.#tallies) as DropReason[]) {
      const { records, micros } = this.#tallies[reason]
      byReason[reason] = { records, units: formatMicros(micros) }
    }
    return { dir: this.#dir, state: this.#failing ? 'failing' : 'open', byReason, writeErrors: this.#writeErrors, lastError: this.#lastError }
  }

  /** Appends the lines of one report in one write. */
  async #write (lines: DeadRecord[]): Promise<void> {
    try {
      await appendDeadLetter(this.#dir, this.#file, lines)
    } catch (error) {
      this.#failed(error as NodeJS.ErrnoException, lines)
      return
    }
    this.#failing = false
    for (const line of lines) this.#count(line)
  }

  #failed (error: NodeJS.ErrnoException, lines: DeadRecord[]): void {
    this.#writeErrors += lines.length
    this.#lastError = error.message
    this.#failing = true
    if (this.#failureLogged) return
    this.#failureLogged = true
    this.#logger.error({ err: error, dir: this.#dir, records: lines },
      'kinde-metering: the dead letter cannot be written; dropped records reach onDrop and this log only (logged once)')
  }

  #count (record: DeadRecord): void {
    const tally = this.#tallies[record.reason]
    tally.records++
    tally.micros = addMicros(tally.micros, parseMicros(record.value))
  }
}
