// lib/core/delivery/: one flush: pending usage to meter usage records, paced, sent and classified.
/**
 * One flush's delivery: resolves the pending usage to agreements, sums it per
 * (agreement, feature), sends one record per pair, and classifies each outcome. What was not
 * delivered comes back as leftovers, in the form it was taken, for the store to hold until the
 * next flush; what can never be delivered is reported through {@link DropReporter}.
 */
import { addMicros, formatMicros, type Micros } from '../usage/decimal.js'
import type { DropReporter, Undeliverable } from '../report/drops.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { SendGate } from './gate.js'
import type { KindeApi, MeterUsageRecord, SendFailure } from '../kinde/api.js'
import { KindeApiError } from '../report/errors.js'
import { isNewer } from '../usage/latest.js'
import type { MeteringConfig } from '../config/options.js'
import type { AgreementResolver } from '../kinde/resolver.js'
import type { Counters, FlushFailure } from '../report/stats.js'
import { RefKind, type Logger, type UsageEntry } from '../usage/types.js'
import { entryKey } from '../store/take.js'

/**
 * Usage bound for one record: one (agreement, feature) pair and the entries summed into it, or
 * for an absolute record, the latest of the values set for it and the entries it supersedes.
 */
interface SendItem<E extends UsageEntry> {
  agreementId: string
  feature: string
  micros: Micros
  at: number
  absolute: boolean
  origin: string | undefined
  sources: E[]
}

/** What a delivery achieved, with entries of the type it was given. */
export interface DeliveryResult<E extends UsageEntry = UsageEntry> {
  /** Records Kinde accepted. */
  sent: number
  /** Units Kinde accepted (levels set with `set()` are not amounts and count 0). */
  sentMicros: Micros
  /** Records reported as dropped. */
  dropped: number
  /** Usage to keep pending: failed, or not reached before the deadline. */
  leftover: { entries: E[] }
  /** The first failure that left usage pending, if one did. */
  failure?: FlushFailure
}

/** How one delivery is paced and followed. */
export interface DeliveryHooks<E extends UsageEntry = UsageEntry> {
  /** Epoch ms after which no wait starts; read again before every wait. */
  deadline: () => number
  /** Awaited with the entries of each record before it is first sent (a journal marks them in flight). */
  onSending?: (entries: E[]) => Promise<void>
  /**
   * Awaited with the entries of each record Kinde accepted, before its worker sends another (the
   * store and the journal forget them; a replay marks them delivered).
   */
  onAccepted?: (entries: E[]) => Promise<void>
  /** Called with entries set aside to be reported dropped when the delivery ends: they need no more delivery. */
  onDropped?: (entries: E[]) => void
}

/** The state of one delivery: its hooks, its result, and what it has to report at the end. */
interface Run<E extends UsageEntry> extends DeliveryHooks<E> {
  result: DeliveryResult<E>
  /** Undeliverable usage, reported once per reason when the delivery ends: one log line per flush, not per record. */
  drops: Record<'rejected' | 'ambiguous' | 'no_agreement', Undeliverable[]>
  /** Whether Kinde's failure to apply a send was already logged in this delivery. */
  notAppliedLogged: boolean
}

/** A failed send as an Error for pino's `err` (message and stack): the error thrown, else one made of Kinde's answer. */
function errorOf (outcome: SendFailure): Error {
  // A failure without an error thrown is an answer, which has a status.
  return outcome.error ?? new KindeApiError('meter usage send', outcome.status!, outcome.body)
}

/** Runs `task` over `items`, at most `limit` at once. */
async function forEachLimited<T> (items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++])
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Delivers batches of pending usage to Kinde. */
export class Delivery {
  readonly #config: MeteringConfig
  readonly #api: KindeApi
  readonly #resolver: AgreementResolver
  readonly #gate: SendGate
  readonly #counters: Counters
  readonly #drops: DropReporter
  readonly #logger: Logger
  /** After Kinde refused the token even when fresh, sends wait until then (epoch ms). */
  #authBlockedUntil = 0
  #authBackoff: number
  /** Whether the refusal was logged since the last accepted send: said once, not at every retry. */
  #authLogged = false
  /** The latest failed send since the last accepted one: why sends are held back, if they are. */
  #lastFailure: FlushFailure | undefined

  constructor (config: MeteringConfig, api: KindeApi, resolver: AgreementResolver, gate: SendGate,
    counters: Counters, drops: DropReporter, logger: Logger) {
    this.#config = config
    this.#api = api
    this.#resolver = resolver
    this.#gate = gate
    this.#counters = counters
    this.#drops = drops
    this.#logger = logger
    this.#authBackoff = config.retry.baseDelay
  }

  /** Epoch ms until which no send may go: Kinde's pause after a 429, or the back-off after a refused token. */
  blockedUntil (): number {
    return Math.max(this.#gate.pausedUntil, this.#authBlockedUntil)
  }

  /** The latest failed send since Kinde last accepted one, or `undefined`. */
  lastFailure (): FlushFailure | undefined {
    return this.#lastFailure
  }

  /**
   * Delivers a batch, retrying sends that failed until the retry attempts or the deadline run
   * out; reports what can never be delivered.
   */
  async deliver<E extends UsageEntry> (batch: { entries: E[], oldest: number }, hooks: DeliveryHooks<E>): Promise<DeliveryResult<E>> {
    const run: Run<E> = {
      ...hooks,
      result: { sent: 0, sentMicros: 0, dropped: 0, leftover: { entries: [] } },
      drops: { rejected: [], ambiguous: [], no_agreement: [] },
      notAppliedLogged: false
    }
    const items = await this.#resolve(batch.entries, run)
    await forEachLimited(items, this.#config.concurrency, item => this.#send(item, run))
    for (const reason of ['no_agreement', 'rejected', 'ambiguous'] as const) {
      this.#drops.report(run.drops[reason], reason)
      run.result.dropped += run.drops[reason].length
    }
    return run.result
  }

  /** Resolves every entry's agreement and sums entries per (agreement, feature). */
  async #resolve<E extends UsageEntry> (entries: E[], run: Run<E>): Promise<Array<SendItem<E>>> {
    const items = new Map<string, SendItem<E>>()
    let lookupError: unknown
    const bind = (entry: E, agreementId: string): void => {
      const absolute = entry.absolute === true
      // Never one record of both kinds: a fleet or a journal may hold both for a pair.
      const key = entryKey({ absolute: entry.absolute, kind: RefKind.Agreement, id: agreementId, feature: entry.feature })
      const item = items.get(key)
      if (item === undefined) {
        items.set(key, { agreementId, feature: entry.feature, micros: entry.micros, at: entry.at, absolute, origin: entry.origin, sources: [entry] })
        return
      }
      item.sources.push(entry)
      if (absolute) {
        // Two references (a user and its customer) resolved to one agreement: the latest value is the level.
        // Stryker disable next-line BooleanLiteral: only two values set in one millisecond by one instance differ, and neither is later
        if (isNewer(entry, item, false)) Object.assign(item, { micros: entry.micros, at: entry.at, origin: entry.origin })
        return
      }
      item.micros = addMicros(item.micros, entry.micros)
      item.at = Math.max(item.at, entry.at)
    }
    const lookUps: E[] = []
    for (const entry of entries) {
      if (entry.kind === RefKind.Agreement) bind(entry, entry.id)
      else lookUps.push(entry)
    }
    await forEachLimited(lookUps, this.#config.concurrency, async entry => {
      try {
        const agreementId = await this.#resolver.resolve(entry.kind as Exclude<RefKind, RefKind.Agreement>, entry.id, entry.feature)
        if (agreementId === null) this.#drop(run, 'no_agreement', [entry])
        else bind(entry, agreementId)
      } catch (error) {
        lookupError ??= error
        run.result.failure ??= { kind: 'lookup', message: (error as Error).message }
        run.result.leftover.entries.push(entry)
      }
    })
    if (lookupError !== undefined) {
      this.#logger.warn({ err: lookupError, pending: run.result.leftover.entries.length },
        'kinde-metering: customer look-up failed; that usage stays pending for the next flush')
    }
    return [...items.values()]
  }

  async #send<E extends UsageEntry> (item: SendItem<E>, run: Run<E>): Promise<void> {
    const record: MeterUsageRecord = {
      customer_agreement_id: item.agreementId,
      billing_feature_code: item.feature,
      meter_value: formatMicros(item.micros),
      meter_usage_timestamp: new Date(item.at).toISOString(),
      meter_type_code: item.absolute ? 'absolute' : 'delta'
    }
    for (let attempt = 1; ; attempt++) {
      // Stryker disable next-line EqualityOperator: at the very millisecond the back-off ends, sending or waiting is either right
      if (Date.now() < this.#authBlockedUntil || !await this.#gate.acquire(run.deadline())) break
      if (attempt === 1) await run.onSending?.(item.sources)
      this.#counters.inFlight++
      const outcome = await this.#api.sendMeterUsage(record)
      this.#counters.inFlight--
      if (outcome.kind === 'ok') {
        this.#authBackoff = this.#config.retry.baseDelay
        this.#authLogged = false
        this.#lastFailure = undefined
        // A level is not an amount: sent units stay the sum of the deltas.
        this.#counters.sent.add(1, item.absolute ? 0 : item.micros)
        if (!item.absolute) run.result.sentMicros = addMicros(run.result.sentMicros, item.micros)
        run.result.sent++
        await run.onAccepted?.(item.sources)
        return
      }
      if (this.#handleFailure(item, outcome, run)) return
      if (attempt >= this.#config.retry.attempts) break
      // Full jitter: retries of many records spread out instead of arriving together.
      const backoff = Math.random() * Math.min(this.#config.retry.maxDelay, this.#config.retry.baseDelay * 2 ** (attempt - 1))
      // Stryker disable next-line EqualityOperator: a back-off ending at the deadline's very millisecond may wait or not
      if (Date.now() + backoff > run.deadline()) break
      await sleep(backoff)
      this.#counters.retried++
    }
    // Held back by a failure (this item's, or an earlier one's pause or back-off), or out of time.
    run.result.failure ??= this.#lastFailure
    run.result.leftover.entries.push(...item.sources)
  }

  /** Sets usage aside to be reported dropped when the delivery ends; it needs no more delivery. */
  #drop<E extends UsageEntry> (run: Run<E>, reason: keyof Run<E>['drops'], entries: E[], agreementId?: string, error?: Undeliverable['error']): void {
    for (const entry of entries) run.drops[reason].push({ entry, agreementId, error })
    run.onDropped?.(entries)
  }

  /** Counts and handles a failed send; true when the item is done with (dropped or held back), false to retry it. */
  #handleFailure<E extends UsageEntry> (item: SendItem<E>, outcome: SendFailure, run: Run<E>): boolean {
    const error = { status: outcome.status, body: outcome.body, message: outcome.message }
    // A rejected record is dropped, not kept: it is no reason for usage to stay pending.
    if (outcome.kind !== 'rejected') {
      const credentials = outcome.tokenRefused === true || outcome.tokenOption !== undefined
      this.#lastFailure = { kind: credentials ? 'credentials' : outcome.kind, message: outcome.message }
    }
    switch (outcome.kind) {
      case 'rejected':
        this.#counters.failures.rejected++
        this.#drop(run, 'rejected', item.sources, item.agreementId, error)
        return true
      case 'unauthorized':
        this.#counters.failures.unauthorized++
        this.#holdBackAfterAuthFailure(outcome)
        run.result.failure ??= this.#lastFailure
        run.result.leftover.entries.push(...item.sources)
        return true
      case 'ambiguous':
        this.#counters.failures.ambiguous++
        // Sending an absolute value twice cannot count it twice: it is retried under either policy.
        if (this.#config.ambiguous === 'retry' || item.absolute) return false
        this.#drop(run, 'ambiguous', item.sources, item.agreementId, error)
        return true
      default:
        this.#counters.failures.notApplied++
        if (outcome.waitMs !== undefined) this.#gate.pause(outcome.waitMs)
        if (!run.notAppliedLogged) {
          run.notAppliedLogged = true
          this.#logger.warn({ status: outcome.status, err: errorOf(outcome) }, 'kinde-metering: Kinde did not apply a send; retrying with backoff')
        }
        return false
    }
  }

  /** Kinde refused even a fresh token, or gave none: keep the usage (credentials may be fixed) and back off. */
  #holdBackAfterAuthFailure (outcome: SendFailure): void {
    this.#authBlockedUntil = Date.now() + this.#authBackoff
    this.#authBackoff = Math.min(this.#authBackoff * 2, this.#config.retry.maxDelay)
    if (this.#authLogged) return
    this.#authLogged = true
    if (outcome.tokenOption !== undefined) {
      this.#logger.error({ option: outcome.tokenOption, err: errorOf(outcome) },
        `kinde-metering: option "${outcome.tokenOption}" gave no token; usage stays pending`)
      return
    }
    if (outcome.tokenRefused === true) {
      this.#logger.error({ status: outcome.status, err: errorOf(outcome) },
        'kinde-metering: no Management API token: check domain (your *.kinde.com domain), clientId and clientSecret; usage stays pending')
      return
    }
    this.#logger.error({ status: outcome.status, body: outcome.body, err: errorOf(outcome) },
      'kinde-metering: Kinde refused the Management API token. Authorize the M2M application for the Management API ' +
      'with the scope create:meter_usage (and read:users, read:organizations, read:billing_agreements to resolve customers); usage stays pending')
  }
}
