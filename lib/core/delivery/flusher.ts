// lib/core/delivery/: one flush: pending usage to meter usage records, paced, sent and classified.
/**
 * When flushes run and what each does around a {@link Delivery}: on an interval, early when the
 * local aggregator is full, on demand and through the close; coalesced so they never overlap;
 * local usage moved into the store (and the journal) between flushes; the journals of dead
 * processes taken over; overflowed usage reported once per flush.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Aggregator } from '../usage/aggregator.js'
import type { DeadLetter } from '../dead-letter/dead-letter.js'
import type { Delivery } from './deliver.js'
import type { DropReporter } from '../report/drops.js'
import type { UsageJournal } from '../journal/usage-journal.js'
import type { MeteringConfig } from '../config/options.js'
import type { Counters, FlushOutcome } from '../report/stats.js'
import { keysOf, type Take, type TakenEntry } from '../store/take.js'
import type { UsageStore } from '../store/usage-store.js'
import { formatMicros, type Micros } from '../usage/decimal.js'
import type { DropReason, Logger } from '../usage/types.js'

/** What `close()` delivered and dropped. */
export interface CloseOutcome {
  /** Records Kinde accepted during the close. */
  sent: number
  /** Records reported dropped during the close, whatever the reason. */
  dropped: number
  /** `dropped` by reason: `shutdown` when `shutdownTimeout` ran out, `rejected` when Kinde refused a record, and so on. */
  droppedByReason: Record<DropReason, number>
}

/** The parts of the core a flush works with. */
export interface FlushParts {
  readonly config: MeteringConfig
  readonly logger: Logger
  readonly store: UsageStore
  /** What the request path recorded since the last move into the store. */
  readonly local: Aggregator
  /** What the request path could not hold for want of room, itemized for `onDrop`. */
  readonly overflow: Aggregator
  readonly counters: Counters
  readonly drops: DropReporter
  readonly delivery: Delivery
  /** The journal, or {@link NO_JOURNAL} without option `journal`. */
  readonly journal: UsageJournal
  readonly deadLetter: DeadLetter | undefined
}

/** Runs the flushes of one core. */
export class Flusher {
  /** Pairs the local aggregator may hold: maxPendingPairs less what the store already holds. */
  capacity: number
  /** Resolves once the journal took over what dead processes left (at once without a journal). */
  readonly ready: Promise<void>
  readonly #parts: FlushParts
  readonly #timer: NodeJS.Timeout
  readonly #syncTimer: NodeJS.Timeout | undefined
  #earlyFlushScheduled = false
  #current: Promise<FlushOutcome> | undefined
  #next: Promise<FlushOutcome> | undefined
  #closed = false
  #shutdownDeadline = Infinity

  constructor (parts: FlushParts) {
    this.#parts = parts
    const { config, store, journal } = parts
    this.capacity = config.maxPendingPairs
    // Timers never keep the process alive, and are re-armed after each run so runs never overlap.
    this.#timer = setTimeout(() => { void this.#timedFlush() }, config.flushInterval).unref()
    this.ready = this.#recover()
    const syncInterval = Math.min(store.syncInterval, journal.syncInterval)
    if (syncInterval !== Infinity) {
      this.#syncTimer = setInterval(() => { void this.#timedSync() }, syncInterval).unref()
    }
  }

  /** Starts a flush after the current request, to free room, unless one is already on its way. */
  soon (): void {
    if (this.#earlyFlushScheduled) return
    this.#earlyFlushScheduled = true
    // Flushing frees room; it starts after this request, never inside it.
    setImmediate(() => { void this.flush() })
  }

  /**
   * Delivers everything pending now. Flushes never overlap: called during one, it waits for it and
   * runs another, so usage recorded before the call is included. Never rejects.
   */
  flush (): Promise<FlushOutcome> {
    if (this.#current === undefined) return this.#startFlush()
    this.#next ??= this.#current.then(() => {
      this.#next = undefined
      return this.#startFlush()
    })
    return this.#next
  }

  /**
   * Stops the timers and drains what is pending up to `shutdownTimeout`, then reports what
   * remains with reason `shutdown` (a shared store keeps it for the rest of the fleet).
   */
  async close (): Promise<CloseOutcome> {
    const { config, store, delivery, journal } = this.#parts
    this.#closed = true
    clearTimeout(this.#timer)
    clearInterval(this.#syncTimer)
    this.#shutdownDeadline = Date.now() + config.shutdownTimeout
    const outcome: CloseOutcome = { sent: 0, dropped: 0, droppedByReason: this.#droppedRecords() }
    const droppedBefore = outcome.droppedByReason
    // One drain up to the shutdown's deadline: each flush of the close waits every pause and backoff
    // that ends before it; between flushes that delivered nothing, a backoff that is cut to the time left.
    for (let idle = 0; ;) {
      const flushed = await this.flush()
      outcome.sent += flushed.sent
      // A shared store keeps what remains for the rest of the fleet. Recording stopped before the
      // close and each flush moves local usage into the store: what remains is all in the store.
      if (store.shared || store.pending().pairs === 0) break
      // Kinde asked for a pause that outlasts the deadline: nothing can go before it.
      // Stryker disable next-line EqualityOperator: differs only for a pause ending on the deadline's very millisecond, when a send may start at that millisecond or not
      if (delivery.blockedUntil() >= this.#shutdownDeadline) break
      idle = flushed.sent > 0 ? 0 : idle + 1
      if (idle > 0) {
        const left = this.#shutdownDeadline - Date.now()
        await sleep(Math.min(left, config.retry.maxDelay, config.retry.baseDelay * 2 ** (idle - 1)))
      }
      // No send starts after the deadline: what remains is reported now.
      // Stryker disable next-line EqualityOperator: differs only when the back-off ends on the deadline's very millisecond, when a send may start at that millisecond or not
      if (Date.now() >= this.#shutdownDeadline) break
    }
    if (!store.shared) await this.#dropRemaining()
    await store.close()
    await journal.close()
    const droppedAfter = this.#droppedRecords()
    for (const reason of Object.keys(droppedAfter) as DropReason[]) {
      droppedAfter[reason] -= droppedBefore[reason]
      outcome.dropped += droppedAfter[reason]
    }
    outcome.droppedByReason = droppedAfter
    return outcome
  }

  /** Records reported dropped so far, by reason. */
  #droppedRecords (): Record<DropReason, number> {
    const records = {} as Record<DropReason, number>
    const { dropped } = this.#parts.counters
    for (const reason of Object.keys(dropped) as DropReason[]) records[reason] = dropped[reason].records
    return records
  }

  /** Reports everything still pending once shutdownTimeout ran out. */
  async #dropRemaining (): Promise<void> {
    const { store, drops, deadLetter, journal } = this.#parts
    // Only a store that is not shared gets here, and such a store always opens a take.
    const take = (await store.take())!
    journal.taken(take)
    drops.report(take.entries.map(entry => ({ entry })), 'shutdown')
    const keys = keysOf(take.entries)
    store.dropped(take.id, keys)
    journal.dropped(take.id, keys)
    await this.#settle(take)
  }

  /**
   * Ends a take in the store, then in the journal: the journal forgets dropped usage only once
   * the dead letter holds it.
   */
  async #settle (take: Take): Promise<void> {
    const { store, journal, deadLetter } = this.#parts
    await store.settle(take.id)
    await deadLetter?.written()
    await journal.settle(take.id)
  }

  #startFlush (): Promise<FlushOutcome> {
    const flush = this.#runFlush().finally(() => {
      // With a flush queued, this one stays current until the queued one starts: a caller resumed
      // by this flush's end and calling flush() again must join the queued flush, not start a third
      // beside it. A flush ends while it is current: the queued one starts only once it settled.
      if (this.#next === undefined) this.#current = undefined
    })
    this.#current = flush
    return flush
  }

  async #runFlush (): Promise<FlushOutcome> {
    const { config, logger, store, delivery, journal, counters } = this.#parts
    const startedAt = Date.now()
    const outcome: FlushOutcome = { startedAt, durationMs: 0, sent: 0, pending: 0, dropped: 0, deliveredHere: false }
    let sentMicros: Micros = 0
    try {
      this.#reportOverflow()
      await this.#sync()
      await this.ready
      await this.#recover()
      const flushDeadline = startedAt + config.flushInterval
      // Sends held (429 pause, refused token) past this flush's slot: pending usage waits for the
      // pause where it is, rather than being taken and put back by flush after empty flush.
      const held = !this.#closed && delivery.blockedUntil() > flushDeadline
      if (held) outcome.error = delivery.lastFailure()
      const take = held ? undefined : await store.take()
      if (take !== undefined) {
        outcome.deliveredHere = true
        journal.taken(take)
        const result = await delivery.deliver(take, {
          // During the close its deadline is the only one, also for a flush begun before it.
          deadline: () => this.#closed ? this.#shutdownDeadline : flushDeadline,
          onSending: entries => journal.sending(take.id, keysOf(entries)),
          onAccepted: async entries => { this.#delivered(take.id, entries) },
          onDropped: entries => { this.#dropped(take.id, entries) }
        })
        outcome.sent = result.sent
        sentMicros = result.sentMicros
        outcome.dropped = result.dropped
        outcome.pending = result.leftover.entries.length
        if (result.failure !== undefined) outcome.error = result.failure
        if (outcome.pending > 0) {
          const keys = keysOf(result.leftover.entries)
          await store.putBack(take.id, keys)
          await journal.putBack(take.id, keys)
        }
        await this.#settle(take)
      }
    } catch (error) {
      outcome.error = { kind: 'flush', message: (error as Error).message }
      logger.error({ err: error }, 'kinde-metering: flush failed; pending usage is kept for the next one')
    }
    this.capacity = Math.max(0, config.maxPendingPairs - store.pending().pairs)
    this.#earlyFlushScheduled = false
    outcome.durationMs = Date.now() - startedAt
    counters.lastFlush = outcome
    logger.debug({ ...outcome }, 'kinde-metering: flush')
    if (outcome.sent > 0 || outcome.dropped > 0) {
      // Once per flush that did something: a user sees the plugin at work without per-request noise.
      logger.info({ records: outcome.sent, units: formatMicros(sentMicros), dropped: outcome.dropped, pending: outcome.pending, durationMs: outcome.durationMs },
        `kinde-metering: flush sent ${outcome.sent} record(s)${outcome.dropped > 0 ? `, dropped ${outcome.dropped}` : ''}`)
    }
    return outcome
  }

  async #timedFlush (): Promise<void> {
    await this.flush()
    // After close() cleared the timer, refresh() leaves it cleared.
    this.#timer.refresh()
  }

  /**
   * Moves local usage into the store between flushes. What the store then still holds in this
   * process (a shared store while its backend is unreachable) counts against maxPendingPairs.
   */
  async #timedSync (): Promise<void> {
    await this.#sync()
    this.capacity = Math.max(0, this.#parts.config.maxPendingPairs - this.#parts.store.pending().pairs)
  }

  /** Moves what was recorded locally into the store. */
  async #sync (): Promise<void> {
    const batch = this.#parts.local.drain()
    if (batch.entries.length === 0) return
    this.#parts.journal.append(batch.entries)
    await this.#parts.store.add(batch)
  }

  /** Kinde accepted a record: the store and the journal forget its usage at once. */
  #delivered (take: string, entries: TakenEntry[]): void {
    const keys = keysOf(entries)
    this.#parts.store.delivered(take, keys)
    this.#parts.journal.delivered(take, keys)
  }

  /** Usage set aside to be reported dropped: the store forgets it at once, the journal when the take settles. */
  #dropped (take: string, entries: TakenEntry[]): void {
    const keys = keysOf(entries)
    this.#parts.store.dropped(take, keys)
    this.#parts.journal.dropped(take, keys)
  }

  /** Takes over the journals of dead processes: their usage joins the store, for the next flush. */
  async #recover (): Promise<void> {
    const { journal, drops, deadLetter, store } = this.#parts
    const recovered = await journal.recover()
    drops.report(recovered.ambiguous, 'ambiguous')
    await deadLetter?.written()
    if (recovered.pending.entries.length > 0) await store.add(recovered.pending)
  }

  /** Reports usage refused for want of room since the last flush: once per flush, never silently. */
  #reportOverflow (): void {
    // Reporting nothing says nothing: the reporter skips an empty list.
    this.#parts.drops.report(this.#parts.overflow.drain().entries.map(entry => ({ entry })), 'overflow')
  }
}
