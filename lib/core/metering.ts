// lib/core/: the framework-free core: the Metering facade over the folders below.
/**
 * The framework-free core: records usage synchronously on the request path, and flushes it to
 * Kinde on an interval, on demand and at close. Adapters (Fastify, Express) only translate a
 * finished request into `record()` calls and tie `close()` to their host's lifecycle.
 */
import { exposeToAdapters } from './adapter-hooks.js'
import { Aggregator } from './usage/aggregator.js'
import { addMicros, formatMicros, isZero, toMicros } from './usage/decimal.js'
import { DeadLetter } from './dead-letter/dead-letter.js'
import { Delivery } from './delivery/deliver.js'
import { Flusher, type CloseOutcome } from './delivery/flusher.js'
import { DropReporter } from './report/drops.js'
import { FeatureKinds } from './usage/feature-kinds.js'
import { SendGate } from './delivery/gate.js'
import { KindeHttp } from './kinde/http.js'
import { Journal } from './journal/journal.js'
import { NO_JOURNAL, type UsageJournal } from './journal/usage-journal.js'
import { KindeApi } from './kinde/api.js'
import { consoleLogger } from './report/logger.js'
import { resolveConfig, type MeteringConfig, type MeteringOptions } from './config/options.js'
import { Refusals } from './report/refusals.js'
import { AgreementResolver } from './kinde/resolver.js'
import { Counters, type FlushOutcome, type MeteringStats } from './report/stats.js'
import { MemoryStore, type UsageStore } from './store/usage-store.js'
import { TokenProvider } from './kinde/token.js'
import { isReference, MAX_REFERENCE_LENGTH, referenceId, referenceKind, referenceOf } from './usage/reference.js'
import type { CustomerRef } from './usage/types.js'

export { MAX_REFERENCE_LENGTH }
export type { CloseOutcome }

/** Pending pairs of overflowed usage itemized for `onDrop`; beyond that it is only counted. */
const OVERFLOW_ITEMIZED = 10_000

const INVALID_VALUE = 'meter value must be a finite number >= 0'
const INVALID_FEATURE = `feature must be a Kinde billing feature code, a string of 1 to ${MAX_REFERENCE_LENGTH} characters`
const INVALID_CUSTOMER = `customer must name exactly one of agreementId, customerId, userId or orgCode, as a string of 1 to ${MAX_REFERENCE_LENGTH} characters`
const MIXED_KINDS = 'a feature is metered either with record() (delta) or with set() (absolute) in one process, and this one already was the other way'

/** Meters usage and delivers it to Kinde. One instance per server process. */
export class Metering {
  /** The validated configuration. */
  readonly config: MeteringConfig
  readonly #store: UsageStore
  readonly #local = new Aggregator()
  readonly #overflow = new Aggregator()
  readonly #counters = new Counters()
  readonly #refusals: Refusals
  readonly #http: KindeHttp
  readonly #tokens: TokenProvider
  readonly #resolver: AgreementResolver
  readonly #flusher: Flusher
  readonly #journal: UsageJournal
  readonly #deadLetter: DeadLetter | undefined
  readonly #featureKinds = new FeatureKinds()
  /** Epoch ms of the latest `set()`: values get non-decreasing times, so a clock stepping back never reorders them. */
  #lastSetAt = 0
  #closing: Promise<CloseOutcome> | undefined
  #closed = false

  /**
   * @throws InvalidOptionError when an option is missing or invalid.
   */
  constructor (options: MeteringOptions<any>) {
    this.config = resolveConfig(options)
    const logger = options.logger ?? consoleLogger
    this.#store = options.store ?? new MemoryStore()
    this.#refusals = new Refusals(this.#counters, logger)
    this.#http = new KindeHttp(this.config.origin, { connections: this.config.concurrency, timeout: this.config.requestTimeout })
    this.#tokens = new TokenProvider(this.config, this.#http)
    const api = new KindeApi(this.#http, this.#tokens)
    this.#resolver = new AgreementResolver(api, this.config)
    this.#deadLetter = this.config.deadLetter && new DeadLetter(this.config.deadLetter, logger)
    const drops = new DropReporter(this.#counters, logger, this.config.onDrop, this.config.agreementCacheTtl, this.#deadLetter)
    const delivery = new Delivery(this.config, api, this.#resolver, new SendGate(this.config.maxRequestsPerSecond),
      this.#counters, drops, logger)
    this.#store.attach({
      logger,
      ambiguous: this.config.ambiguous,
      drop: (entries, reason, error) => { drops.report(entries.map(entry => ({ entry, error })), reason) }
    })
    this.#journal = this.config.journal === undefined ? NO_JOURNAL : new Journal(this.config.journal, this.config.ambiguous === 'drop', logger)
    this.#flusher = new Flusher({
      config: this.config,
      logger,
      store: this.#store,
      local: this.#local,
      overflow: this.#overflow,
      counters: this.#counters,
      drops,
      delivery,
      journal: this.#journal,
      deadLetter: this.#deadLetter
    })
    exposeToAdapters(this, {
      recordAll: (customer, features, values, origin, requestId) => {
        const now = Date.now()
        for (let i = 0; i < features.length; i++) this.#record(customer, features[i], values[i], origin, now, requestId)
      },
      customerFailed: (error, origin) => { this.#refusals.customerFailed(error, origin) },
      countStatusFailed: (error, origin) => { this.#refusals.countStatusFailed(error, origin) }
    })
  }

  /**
   * Records `value` units of `feature` for `customer`. Synchronous, no I/O: safe on the request
   * path. Never throws: a bad value or customer is counted, logged once per origin and feature,
   * and refused (false).
   * @param origin where the usage came from (a route), for the log line of a refused value.
   * @param requestId the request's id, logged with a refused value.
   */
  record (customer: CustomerRef, feature: string, value: number, origin = '', requestId?: string): boolean {
    return this.#record(customer, feature, value, origin, 0, requestId)
  }

  /** `record()`, with the epoch ms of the usage given, or 0 to read the clock once the usage counts. */
  #record (customer: CustomerRef, feature: string, value: number, origin: string, at: number, requestId: unknown): boolean {
    if (this.#closed) {
      this.#counters.refused.afterClose++
      return false
    }
    const micros = toMicros(value)
    if (micros === -1) return this.#refusals.refuse('invalidValue', origin, feature, INVALID_VALUE, value, requestId)
    if (!isReference(feature)) return this.#refusals.refuse('invalidFeature', origin, feature, INVALID_FEATURE, feature, requestId)
    const kind = referenceKind(customer)
    if (kind === -1) return this.#refusals.refuse('invalidCustomer', origin, feature, INVALID_CUSTOMER, customer, requestId)
    const id = referenceId(customer, kind)
    if (!this.#featureKinds.claim(feature, false)) return this.#refusals.refuse('mixedKinds', origin, feature, MIXED_KINDS, undefined, requestId)
    if (isZero(micros)) return true
    // Stryker disable next-line ConditionalExpression: a clock read per meter differs from the request's one read by the loop's own microseconds; only the cost on the request path tells them apart
    const now = at === 0 ? Date.now() : at
    const capacity = this.#flusher.capacity
    if (!this.#local.add(kind, id, feature, micros, now, capacity)) {
      if (!this.#overflow.add(kind, id, feature, micros, now, OVERFLOW_ITEMIZED)) this.#counters.dropped.overflow.add(1, micros)
    }
    if (this.#local.size >= capacity) this.#flusher.soon()
    return true
  }

  /**
   * Sets the current level of `feature` for `customer` (seats, gigabytes stored, active
   * projects): Kinde's `absolute` meter, where {@link record} is its `delta`. The latest value
   * set per (customer, feature) before a flush is sent as one record, with the time it was set,
   * and replaces the period's usage in Kinde; 0 is a value like any other. Synchronous, no I/O.
   * Never throws: a bad value or customer, or a feature already metered with `record()` in this
   * process, is counted, logged once per origin and feature, and refused (false).
   * @param origin where the value came from, for the log line of a refused value.
   */
  set (customer: CustomerRef, feature: string, value: number, origin = ''): boolean {
    if (this.#closed) {
      this.#counters.refused.afterClose++
      return false
    }
    const micros = toMicros(value)
    if (micros === -1) return this.#refusals.refuse('invalidValue', origin, feature, INVALID_VALUE, value)
    if (!isReference(feature)) return this.#refusals.refuse('invalidFeature', origin, feature, INVALID_FEATURE, feature)
    const reference = referenceOf(customer)
    if (reference === undefined) return this.#refusals.refuse('invalidCustomer', origin, feature, INVALID_CUSTOMER, customer)
    if (!this.#featureKinds.claim(feature, true)) return this.#refusals.refuse('mixedKinds', origin, feature, MIXED_KINDS, undefined)
    const at = this.#lastSetAt = Math.max(Date.now(), this.#lastSetAt)
    const capacity = this.#flusher.capacity
    if (!this.#local.set(reference.kind, reference.id, feature, micros, at, capacity)) {
      if (!this.#overflow.set(reference.kind, reference.id, feature, micros, at, OVERFLOW_ITEMIZED)) this.#counters.dropped.overflow.add(1, 0)
    }
    if (this.#local.size >= capacity) this.#flusher.soon()
    return true
  }

  /**
   * Delivers everything pending now. Flushes never overlap: called during one, it waits for it and
   * runs another, so usage recorded before the call is included. Never rejects.
   */
  flush (): Promise<FlushOutcome> {
    return this.#flusher.flush()
  }

  /**
   * Resolves once the journal (option `journal`) has taken over the usage that processes which
   * died left in its directory; the next flush delivers it. Resolves at once without a journal.
   */
  ready (): Promise<void> {
    return this.#flusher.ready
  }

  /**
   * Where usage goes and how it is kept, for the adapters' startup log line: the Kinde origin,
   * the flush interval (ms), the store's kind (`MemoryStore`, `RedisStore`, …) and the journal's
   * directory (`false` without one). Never a credential.
   */
  summary (): { domain: string, flushInterval: number, store: string, journal: string | false } {
    return { domain: this.config.origin, flushInterval: this.config.flushInterval, store: this.#store.constructor.name, journal: this.config.journal?.dir ?? false }
  }

  /** A snapshot of pending, sent and dropped usage; cheap enough to serve from a health route. */
  stats (): MeteringStats {
    const held = this.#store.pending()
    const oldest = Math.min(held.oldest, this.#local.oldest)
    return {
      pending: { pairs: held.pairs + this.#local.size, units: formatMicros(addMicros(held.micros, this.#local.total())) },
      oldestPendingAgeMs: oldest === Infinity ? 0 : Date.now() - oldest,
      inFlight: this.#counters.inFlight,
      sent: this.#counters.sent.toJSON(),
      retried: this.#counters.retried,
      failures: { ...this.#counters.failures },
      dropped: this.#counters.droppedJSON(),
      refused: { ...this.#counters.refused },
      lookups: { ...this.#resolver.lookups },
      tokensFetched: this.#tokens.fetched,
      lastFlush: this.#counters.lastFlush,
      journal: this.#journal.stats(),
      deadLetter: this.#deadLetter?.stats()
    }
  }

  /**
   * Stops the timers and delivers what is pending, retrying until `shutdownTimeout`; then reports
   * what remains with reason `shutdown`. Idempotent: later calls return the same promise.
   * Recording after close is counted, not thrown.
   */
  close (): Promise<CloseOutcome> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close (): Promise<CloseOutcome> {
    this.#closed = true
    const outcome = await this.#flusher.close()
    await this.#http.close()
    return outcome
  }
}
