/**
 * One flush's delivery: resolves the pending usage to agreements, sums it per
 * (agreement, feature), sends one record per pair, and classifies each outcome. What was not
 * delivered comes back as leftovers, in the form it was taken, for the store to hold until the
 * next flush; what can never be delivered is reported through {@link DropReporter}.
 */
import type { UsageBatch } from './aggregator.js'
import { addMicros, formatMicros, type Micros } from './decimal.js'
import type { DropReporter, Undeliverable } from './drops.js'
import { sleep, type SendGate } from './gate.js'
import type { KindeApi, MeterUsageRecord, SendOutcome } from './kinde-api.js'
import type { MeteringConfig } from './options.js'
import type { AgreementResolver } from './resolver.js'
import type { Counters } from './stats.js'
import { RefKind, type Logger, type UsageEntry } from './types.js'

/** Usage bound for one record: one (agreement, feature) pair and the entries summed into it. */
interface SendItem {
  agreementId: string
  feature: string
  micros: Micros
  at: number
  sources: UsageEntry[]
}

/** What a delivery achieved. */
export interface DeliveryResult {
  /** Records Kinde accepted. */
  sent: number
  /** Records reported as dropped. */
  dropped: number
  /** Usage to keep pending: failed, or not reached before the deadline. */
  leftover: UsageBatch
  /** Entries Kinde accepted, as they were taken (for stores and journals that track delivery). */
  delivered: UsageEntry[]
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

  /**
   * Delivers a batch, retrying sends that failed until the retry attempts or `deadline()`
   * (epoch ms, read again before every wait) run out.
   * @param onDelivered called with the entries of each record as soon as Kinde accepted it.
   * @param onSending awaited with the entries of each record before it is first sent.
   */
  async deliver (batch: UsageBatch, deadline: () => number, onDelivered?: (entries: UsageEntry[]) => void,
    onSending?: (entries: UsageEntry[]) => Promise<void>): Promise<DeliveryResult> {
    const result: DeliveryResult = { sent: 0, dropped: 0, leftover: { entries: [], oldest: batch.oldest }, delivered: [] }
    const items = await this.#resolve(batch.entries, result)
    const problems = new Set<string>()
    await forEachLimited(items, this.#config.concurrency, item => this.#send(item, deadline, result, problems, onDelivered, onSending))
    if (result.leftover.entries.length === 0) result.leftover.oldest = Infinity
    return result
  }

  /** Resolves every entry's agreement and sums entries per (agreement, feature). */
  async #resolve (entries: UsageEntry[], result: DeliveryResult): Promise<SendItem[]> {
    const items = new Map<string, SendItem>()
    const noAgreement: Undeliverable[] = []
    let lookupError: unknown
    const bind = (entry: UsageEntry, agreementId: string): void => {
      const key = `${agreementId}\n${entry.feature}`
      const item = items.get(key)
      if (item === undefined) {
        items.set(key, { agreementId, feature: entry.feature, micros: entry.micros, at: entry.at, sources: [entry] })
        return
      }
      item.micros = addMicros(item.micros, entry.micros)
      if (entry.at > item.at) item.at = entry.at
      item.sources.push(entry)
    }
    const lookUps: UsageEntry[] = []
    for (const entry of entries) {
      if (entry.kind === RefKind.Agreement) bind(entry, entry.id)
      else lookUps.push(entry)
    }
    await forEachLimited(lookUps, this.#config.concurrency, async entry => {
      try {
        const agreementId = await this.#resolver.resolve(entry.kind, entry.id, entry.feature)
        if (agreementId === null) noAgreement.push({ entry })
        else bind(entry, agreementId)
      } catch (error) {
        lookupError ??= error
        result.leftover.entries.push(entry)
      }
    })
    if (lookupError !== undefined) {
      this.#logger.warn({ err: lookupError, pending: result.leftover.entries.length },
        'kinde-metering: customer look-up failed; that usage stays pending for the next flush')
    }
    this.#drops.report(noAgreement, 'no_agreement')
    result.dropped += noAgreement.length
    return [...items.values()]
  }

  async #send (item: SendItem, deadline: () => number, result: DeliveryResult, problems: Set<string>,
    onDelivered: ((entries: UsageEntry[]) => void) | undefined, onSending: ((entries: UsageEntry[]) => Promise<void>) | undefined): Promise<void> {
    const record: MeterUsageRecord = {
      customer_agreement_id: item.agreementId,
      billing_feature_code: item.feature,
      meter_value: formatMicros(item.micros),
      meter_usage_timestamp: new Date(item.at).toISOString(),
      meter_type_code: 'delta'
    }
    for (let attempt = 1; ; attempt++) {
      if (Date.now() < this.#authBlockedUntil || !await this.#gate.acquire(deadline())) break
      if (attempt === 1) await onSending?.(item.sources)
      this.#counters.inFlight++
      const outcome = await this.#api.sendMeterUsage(record)
      this.#counters.inFlight--
      if (outcome.kind === 'ok') {
        this.#authBackoff = this.#config.retry.baseDelay
        this.#counters.sent.add(1, item.micros)
        result.sent++
        result.delivered.push(...item.sources)
        onDelivered?.(item.sources)
        return
      }
      if (this.#settleFailure(item, outcome, result, problems)) return
      if (attempt >= this.#config.retry.attempts) break
      // Full jitter: retries of many records spread out instead of arriving together.
      const backoff = Math.random() * Math.min(this.#config.retry.maxDelay, this.#config.retry.baseDelay * 2 ** (attempt - 1))
      if (Date.now() + backoff > deadline()) break
      await sleep(backoff)
      this.#counters.retried++
    }
    result.leftover.entries.push(...item.sources)
  }

  /** Counts and handles a failed send; true when the item is settled (dropped or held back), false to retry it. */
  #settleFailure (item: SendItem, outcome: Exclude<SendOutcome, { kind: 'ok' }>, result: DeliveryResult, problems: Set<string>): boolean {
    const error = { status: outcome.status, body: outcome.body, message: outcome.message }
    const report = (reason: 'rejected' | 'ambiguous'): true => {
      this.#drops.report(item.sources.map(entry => ({ entry, agreementId: item.agreementId, error })), reason)
      result.dropped += item.sources.length
      return true
    }
    switch (outcome.kind) {
      case 'rejected':
        this.#counters.failures.rejected++
        return report('rejected')
      case 'unauthorized':
        this.#counters.failures.unauthorized++
        this.#holdBackAfterAuthFailure(outcome, problems)
        result.leftover.entries.push(...item.sources)
        return true
      case 'ambiguous':
        this.#counters.failures.ambiguous++
        if (this.#config.ambiguous === 'drop') return report('ambiguous')
        return false
      default:
        this.#counters.failures.notApplied++
        if (outcome.waitMs !== undefined) this.#gate.pause(outcome.waitMs)
        if (!problems.has('not_applied')) {
          problems.add('not_applied')
          this.#logger.warn({ status: outcome.status, error: outcome.message }, 'kinde-metering: Kinde did not apply a send; retrying with backoff')
        }
        return false
    }
  }

  /** Kinde refused even a fresh token: keep the usage (credentials may be fixed) and back off. */
  #holdBackAfterAuthFailure (outcome: Exclude<SendOutcome, { kind: 'ok' }>, problems: Set<string>): void {
    this.#authBlockedUntil = Date.now() + this.#authBackoff
    this.#authBackoff = Math.min(this.#authBackoff * 2, this.#config.retry.maxDelay)
    if (problems.has('unauthorized')) return
    problems.add('unauthorized')
    this.#logger.error({ status: outcome.status, body: outcome.body, error: outcome.message },
      'kinde-metering: Kinde refused the Management API token. Authorize the M2M application for the Management API ' +
      'with the scope create:meter_usage (and read:users, read:organizations, read:billing_agreements to resolve customers); usage stays pending')
  }
}
