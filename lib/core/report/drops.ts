// lib/core/report/: what the core tells the user: stats, drops, log output and errors.
/**
 * Reports usage that will not be delivered: counted in `stats()`, logged, and handed to the
 * user's `onDrop` with every field needed to replay it. Nothing is dropped silently.
 */
import { LRUCache } from 'lru-cache'
import type { DeadLetter } from '../dead-letter/dead-letter.js'
import { addMicros, formatMicros, type Micros } from '../usage/decimal.js'
import type { Counters } from './stats.js'
import { refOf, type DroppedRecord, type DropReason, type Logger, type OnDrop, type UsageEntry } from '../usage/types.js'

/** Usage about to be reported, with what is known of why. */
export interface Undeliverable {
  entry: UsageEntry
  agreementId?: string
  error?: DroppedRecord['error']
}

const LOG_LEVEL: Record<DropReason, 'warn' | 'error'> = {
  rejected: 'error',
  ambiguous: 'warn',
  no_agreement: 'warn',
  overflow: 'warn',
  shutdown: 'error'
}

/** Counts, logs and hands over dropped usage. */
export class DropReporter {
  readonly #counters: Counters
  readonly #logger: Logger
  readonly #onDrop: OnDrop | undefined
  /** (reference, feature) pairs already warned about for `no_agreement`, forgotten after the look-up TTL. */
  readonly #warned: LRUCache<string, true>
  readonly #deadLetter: DeadLetter | undefined

  constructor (counters: Counters, logger: Logger, onDrop: OnDrop | undefined, warnTtl: number, deadLetter?: DeadLetter) {
    this.#counters = counters
    this.#logger = logger
    this.#onDrop = onDrop
    this.#warned = new LRUCache({ max: 10_000, ttl: warnTtl })
    this.#deadLetter = deadLetter
  }

  /** Reports `items` as dropped for `reason`. */
  report (items: Undeliverable[], reason: DropReason): void {
    if (items.length === 0) return
    let micros: Micros = 0
    const records: DroppedRecord[] = []
    for (const { entry, agreementId, error } of items) {
      const record: DroppedRecord = {
        customer: refOf(entry.kind, entry.id),
        feature: entry.feature,
        value: formatMicros(entry.micros),
        timestamp: new Date(entry.at).toISOString()
      }
      // A level is not an amount: dropped units stay the sum of the deltas.
      if (entry.absolute === true) record.absolute = true
      else micros = addMicros(micros, entry.micros)
      if (agreementId !== undefined) record.agreementId = agreementId
      if (error !== undefined) record.error = error
      records.push(record)
    }
    this.#counters.dropped[reason].add(records.length, micros)
    this.#log(records, reason, micros)
    if (this.#deadLetter === undefined) this.#handOver(records, reason)
    // The dead letter holds the records before onDrop sees them: whatever onDrop does, they are kept.
    else void this.#deadLetter.append(records, reason).then(() => { this.#handOver(records, reason) })
  }

  #handOver (records: DroppedRecord[], reason: DropReason): void {
    if (this.#onDrop === undefined) return
    try {
      this.#onDrop(records, reason)
    } catch (error) {
      this.#logger.error({ err: error, reason, records }, 'kinde-metering: onDrop threw; the dropped records are in this log entry')
    }
  }

  #log (records: DroppedRecord[], reason: DropReason, micros: Micros): void {
    const level = LOG_LEVEL[reason]
    if (reason === 'no_agreement') {
      // Usage keeps arriving for such a customer: say so once per TTL, not every flush.
      const fresh = records.filter(record => {
        const key = `${JSON.stringify(record.customer)}\n${record.feature}`
        if (this.#warned.has(key)) return false
        this.#warned.set(key, true)
        return true
      })
      if (fresh.length === 0) return
      this.#logger.warn({ reason, records: fresh },
        'kinde-metering: no active Kinde agreement includes this feature for these customers; their usage is not billable and was dropped')
      return
    }
    this.#logger[level]({ reason, count: records.length, units: formatMicros(micros), records }, `kinde-metering: ${records.length} usage record(s) dropped (${reason})`)
  }
}
