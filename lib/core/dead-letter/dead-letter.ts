// lib/core/dead-letter/: records that can never be delivered, kept on disk until replayed.
/**
 * The dead letter (option `deadLetter`): every record reported dropped is appended to a file, so
 * usage that could not be delivered is kept on disk until `kinde-metering replay` delivers it.
 *
 * Nothing here runs on the request path: drops are reported from the flush path, and the dead
 * letter only queues their lines there; one write at a time appends them in the background,
 * flushed to the disk. A directory that cannot be written is logged once and counted; the records
 * still reach `onDrop` and the log.
 */
import { addMicros, formatMicros, parseMicros, type Micros } from '../usage/decimal.js'
import { appendDeadLetter, deadLetterFile, deadRecordOf, readDeadLetter, type DeadRecord } from './file.js'
import { newOwnerId } from '../journal/files.js'
import type { DeadLetterConfig } from '../config/dead-letter-options.js'
import type { DeadLetterStats, Tally } from '../report/stats.js'
import type { DroppedRecord, DropReason, Logger } from '../usage/types.js'

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
