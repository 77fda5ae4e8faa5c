// lib/core/report/: what the core tells the user: stats, drops, log output and errors.
/**
 * Counters of everything that happened to usage, kept by the core and read through `stats()`.
 */
import { addMicros, formatMicros, type Micros } from '../usage/decimal.js'
import type { DropReason } from '../usage/types.js'

/** Records and units of one kind of outcome. */
export interface Tally {
  /** Records (or, for overflow, recordings) counted. */
  records: number
  /** Their exact total, as a decimal string. */
  units: string
}

/**
 * Why usage stayed pending: `credentials` (the token endpoint refused the credentials, or the
 * `accessToken` option gave no token), `unauthorized` (Kinde refused the token), `not_applied`
 * (429, 5xx or no connection, retried until the flush's time ran out), `ambiguous` (a send that
 * may have been applied, retried under `ambiguous: 'retry'`), `lookup` (a customer look-up
 * failed), `flush` (the store or the journal failed).
 */
export type FlushFailureKind = 'credentials' | 'unauthorized' | 'not_applied' | 'ambiguous' | 'lookup' | 'flush'

/** The failure that left usage pending in a flush. */
export interface FlushFailure {
  /** What failed; see {@link FlushFailureKind}. */
  kind: FlushFailureKind
  /** What was said about it (never a secret). */
  message: string
}

/** Outcome of the latest flush. */
export interface FlushOutcome {
  /** Epoch ms the flush started. */
  startedAt: number
  /** Milliseconds it took. */
  durationMs: number
  /** Records Kinde accepted. */
  sent: number
  /** Records left pending for a later flush (failed, or not reached before the deadline). */
  pending: number
  /** Records reported as dropped. */
  dropped: number
  /**
   * Whether this instance ran the delivery (whatever it achieved): false when a shared store's
   * other instance holds the lease, or while Kinde's pause (or a refused token's back-off)
   * outlasts this flush's slot, when pending usage is left where it is.
   */
  deliveredHere: boolean
  /**
   * Why usage stayed pending, whenever a failure kept it (also while sends are held back by one):
   * a health check reads success as `error === undefined`.
   */
  error?: FlushFailure
}

/** A snapshot of the metering state, from `stats()`. */
export interface MeteringStats {
  /** Usage recorded and not yet delivered: distinct (customer, feature) pairs and total units. */
  pending: { pairs: number, units: string }
  /** Milliseconds since the oldest pending usage was recorded; 0 when nothing is pending. */
  oldestPendingAgeMs: number
  /** Sends to Kinde under way. */
  inFlight: number
  /** Records and units Kinde accepted. */
  sent: Tally
  /** Send attempts repeated after a failure. */
  retried: number
  /** Failed sends, by class (see the `ambiguous` option for the last). */
  failures: { notApplied: number, rejected: number, unauthorized: number, ambiguous: number }
  /** Usage reported through `onDrop`, by reason. */
  dropped: Record<DropReason, Tally>
  /**
   * Recordings refused at the request: bad meter value, bad feature code, bad customer reference
   * (none, or two kinds at once), failing customer function, throwing
   * `countStatus`, after close, and `mixedKinds`: a `record()` of a feature this process meters
   * with `set()`, or the reverse.
   */
  refused: { invalidValue: number, invalidFeature: number, invalidCustomer: number, customerError: number, countStatusError: number, afterClose: number, mixedKinds: number }
  /** Look-ups sent to Kinde to resolve customers. */
  lookups: { users: number, organizations: number, agreements: number }
  /** M2M tokens fetched. */
  tokensFetched: number
  /** The latest flush, or null before the first. */
  lastFlush: FlushOutcome | null
  /** The journal's state and counters, with option `journal`. */
  journal?: JournalStats
  /** The dead letter's size and state, with option `deadLetter` (or `journal`). */
  deadLetter?: DeadLetterStats
}

/** A mutable tally in micros. */
class MicroTally {
  records = 0
  micros: Micros = 0

  add (records: number, micros: Micros): void {
    this.records += records
    this.micros = addMicros(this.micros, micros)
  }

  toJSON (): Tally {
    return { records: this.records, units: formatMicros(this.micros) }
  }
}

/** The core's live counters. */
export class Counters {
  inFlight = 0
  retried = 0
  readonly sent = new MicroTally()
  readonly failures = { notApplied: 0, rejected: 0, unauthorized: 0, ambiguous: 0 }
  readonly dropped: Record<DropReason, MicroTally> = {
    rejected: new MicroTally(),
    ambiguous: new MicroTally(),
    no_agreement: new MicroTally(),
    overflow: new MicroTally(),
    shutdown: new MicroTally()
  }

  readonly refused = { invalidValue: 0, invalidFeature: 0, invalidCustomer: 0, customerError: 0, countStatusError: 0, afterClose: 0, mixedKinds: 0 }
  lastFlush: FlushOutcome | null = null

  /** The dropped tallies as plain numbers and strings. */
  droppedJSON (): Record<DropReason, Tally> {
    const out = {} as Record<DropReason, Tally>
    for (const reason of Object.keys(this.dropped) as DropReason[]) out[reason] = this.dropped[reason].toJSON()
    return out
  }
}

/** The journal's part of `stats()`. */
export interface JournalStats {
  /**
   * `opening` until the directory is locked and scanned; `open` when writes succeed; `failing`
   * after a write failed (retried at the next batch); `off` when the journal could not be
   * opened, lost its lock, or was closed. Usage is metered and delivered in every state.
   */
  state: 'opening' | 'open' | 'failing' | 'off'
  /** Bytes of this process's journal file. */
  bytes: number
  /** Failed writes or rewrites (disk full, directory gone, …). */
  writeErrors: number
  /** The latest error's message, starting with its code (`ENOSPC: no space left on device, write`); null when none. */
  lastError: string | null
  /** Journals taken over from processes that died. */
  recovered: {
    /** Journal files taken over. */
    journals: number
    /** Usage put back for delivery: (customer, feature) records and their total. */
    pending: Tally
    /**
     * Usage of records a dead process was sending when it died (Kinde may have applied them):
     * part of `pending` under `ambiguous: 'retry'`, reported dropped under `'drop'`.
     */
    ambiguous: Tally
    /** Lines skipped because a crash cut them short or they were damaged. */
    skippedLines: number
  }
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
