// lib/core/: the framework-free core: the Metering facade over the folders below.
/**
 * The framework-free core: records usage synchronously on the request path, and flushes it to
 * Kinde on an interval, on demand and at close. Adapters (Fastify, Express) only translate a
 * finished request into `record()` calls and tie `close()` to their host's lifecycle.
 */
import { Aggregator } from './usage/aggregator.js'
import { addMicros, formatMicros, isZero, toMicros } from './usage/decimal.js'
import { DeadLetter } from './dead-letter/dead-letter.js'
import { Delivery } from './delivery/deliver.js'
import { DropReporter } from './report/drops.js'
import { FeatureKinds } from './usage/feature-kinds.js'
import { SendGate, sleep } from './delivery/gate.js'
import { KindeHttp } from './kinde/http.js'
import { Journal } from './journal/journal.js'
import { KindeApi } from './kinde/api.js'
import { consoleLogger } from './report/logger.js'
import { resolveConfig, type CustomerOf, type MeteringConfig, type MeteringOptions } from './config/options.js'
import { AgreementResolver } from './kinde/resolver.js'
import { Counters, type FlushOutcome, type MeteringStats } from './report/stats.js'
import { MemoryStore, type UsageStore } from './store/usage-store.js'
import { TokenProvider } from './kinde/token.js'
import { MAX_REFERENCE_LENGTH, referenceOf } from './usage/reference.js'
import { RefKind, type CustomerRef, type Logger, type UsageEntry } from './usage/types.js'

export { MAX_REFERENCE_LENGTH }

/** Pending pairs of overflowed usage itemized for `onDrop`; beyond that it is only counted. */
const OVERFLOW_ITEMIZED = 10_000

const MIXED_KINDS = 'a feature is metered either with record() (delta) or with set() (absolute) in one process, and this one already was the other way'

/** What `close()` left undelivered. */
export interface CloseOutcome {
  /** Records Kinde accepted during the close. */
  sent: number
  /** Records reported with reason `shutdown` because `shutdownTimeout` ran out. */
  dropped: number
}

/** Meters usage and delivers it to Kinde. One instance per server process. */
export class Metering {
  /** The validated configuration. */
  readonly config: MeteringConfig
  readonly #logger: Logger
  readonly #store: UsageStore
  readonly #local = new Aggregator()
  readonly #overflow = new Aggregator()
  readonly #counters = new Counters()
  readonly #drops: DropReporter
  readonly #http: KindeHttp
  readonly #tokens: TokenProvider
  readonly #resolver: AgreementResolver
  readonly #delivery: Delivery
  readonly #timer: NodeJS.Timeout
  readonly #syncTimer: NodeJS.Timeout | undefined
  readonly #journal: Journal | undefined
  readonly #deadLetter: DeadLetter | undefined
  readonly #ready: Promise<void>
  /** Pairs the local aggregator may hold: maxPendingKeys less what the store already holds. */
  #capacity: number
  #earlyFlushScheduled = false
  #overflowLogged = false
  readonly #invalidLogged = new Set<string>()
  readonly #featureKinds = new FeatureKinds()
  /** Epoch ms of the latest `set()`: values get non-decreasing times, so a clock stepping back never reorders them. */
  #lastSetAt = 0
  #current: Promise<FlushOutcome> | undefined
  #next: Promise<FlushOutcome> | undefined
  #closing: Promise<CloseOutcome> | undefined
  #closed = false
  #shutdownDeadline = Infinity

  /**
   * @throws InvalidOptionError when an option is missing or invalid.
   */
  constructor (options: MeteringOptions<any>) {
    this.config = resolveConfig(options)
    this.#logger = options.logger ?? consoleLogger
    this.#store = options.store ?? new MemoryStore()
    this.#capacity = this.config.maxPendingKeys
    this.#http = new KindeHttp(this.config.origin, { connections: this.config.concurrency, timeout: this.config.requestTimeout })
    this.#tokens = new TokenProvider(this.config, this.#http)
    const api = new KindeApi(this.#http, this.#tokens)
    this.#resolver = new AgreementResolver(api, this.config)
    this.#deadLetter = this.config.deadLetter && new DeadLetter(this.config.deadLetter, this.#logger)
    this.#drops = new DropReporter(this.#counters, this.#logger, this.config.onDrop, this.config.agreementCacheTtl, this.#deadLetter)
    this.#delivery = new Delivery(this.config, api, this.#resolver, new SendGate(this.config.maxRequestsPerSecond),
      this.#counters, this.#drops, this.#logger)
    this.#store.attach?.({
      logger: this.#logger,
      ambiguous: this.config.ambiguous,
      drop: (entries, reason, error) => { this.#drops.report(entries.map(entry => ({ entry, error })), reason) }
    })
    // Timers never keep the process alive, and are re-armed after each run so runs never overlap.
    this.#timer = setTimeout(() => { void this.#timedFlush() }, this.config.flushInterval).unref()
    this.#journal = this.config.journal && new Journal(this.config.journal, this.config.ambiguous === 'drop', this.#logger)
    this.#ready = this.#recover()
    const syncInterval = Math.min(this.#store.syncInterval ?? Infinity, this.config.journal?.syncInterval ?? Infinity)
    if (syncInterval !== Infinity) {
      this.#syncTimer = setInterval(() => { void this.#timedSync() }, syncInterval).unref()
    }
  }

  /**
   * Records `value` units of `feature` for `customer`. Synchronous, no I/O: safe on the request
   * path. Never throws: a bad value or customer is counted, logged once per origin and feature,
   * and refused (false).
   * @param origin where the usage came from (a route), for the log line of a refused value.
   */
  record (customer: CustomerRef, feature: string, value: number, origin = ''): boolean {
    return this.#record(customer, feature, value, origin, 0)
  }

  /**
   * Records the meters of one request: `values[i]` units of `features[i]` for `customer`, each
   * exactly as {@link record} would, at one instant. Adapters use it: on this path the clock read
   * costs as much as the rest of a record, so a request reads it once, not once per meter.
   */
  recordAll (customer: CustomerRef, features: readonly string[], values: readonly number[], origin = ''): void {
    const now = Date.now()
    for (let i = 0; i < features.length; i++) this.#record(customer, features[i], values[i], origin, now)
  }

  /** `record()`, with the epoch ms of the usage given, or 0 to read the clock once the usage counts. */
  #record (customer: CustomerRef, feature: string, value: number, origin: string, at: number): boolean {
    if (this.#closed) {
      this.#counters.refused.afterClose++
      return false
    }
    const micros = toMicros(value)
    if (micros === -1) return this.#refuse('invalidValue', origin, feature, `meter value must be a finite number >= 0, got ${String(value)}`)
    let kind: RefKind
    let id: unknown
    if (customer === null || typeof customer !== 'object') {
      return this.#refuse('invalidCustomer', origin, feature, 'customer must be an object such as { agreementId }')
    } else if ((id = (customer as { agreementId?: unknown }).agreementId) !== undefined) kind = RefKind.Agreement
    else if ((id = (customer as { userId?: unknown }).userId) !== undefined) kind = RefKind.User
    else if ((id = (customer as { orgCode?: unknown }).orgCode) !== undefined) kind = RefKind.Org
    else {
      id = (customer as { customerId?: unknown }).customerId
      kind = RefKind.Customer
    }
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_REFERENCE_LENGTH ||
      typeof feature !== 'string' || feature.length === 0 || feature.length > MAX_REFERENCE_LENGTH) {
      return this.#refuse('invalidCustomer', origin, feature,
        `customer must name one of agreementId, customerId, userId or orgCode, and feature be a string, each of 1 to ${MAX_REFERENCE_LENGTH} characters`)
    }
    if (!this.#featureKinds.claim(feature, false)) return this.#refuse('mixedKinds', origin, feature, MIXED_KINDS)
    if (isZero(micros)) return true
    const now = at === 0 ? Date.now() : at
    if (!this.#local.add(kind, id, feature, micros, now, this.#capacity)) {
      if (!this.#overflow.add(kind, id, feature, micros, now, OVERFLOW_ITEMIZED)) this.#counters.dropped.overflow.add(1, micros)
    }
    if (this.#local.size >= this.#capacity && !this.#earlyFlushScheduled) {
      this.#earlyFlushScheduled = true
      // Flushing frees room; it starts after this request, never inside it.
      setImmediate(() => { void this.flush() })
    }
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
    if (micros === -1) return this.#refuse('invalidValue', origin, feature, `meter value must be a finite number >= 0, got ${String(value)}`)
    const reference = referenceOf(customer, feature)
    if (reference === undefined) {
      return this.#refuse('invalidCustomer', origin, feature,
        `customer must name one of agreementId, customerId, userId or orgCode, and feature be a string, each of 1 to ${MAX_REFERENCE_LENGTH} characters`)
    }
    if (!this.#featureKinds.claim(feature, true)) return this.#refuse('mixedKinds', origin, feature, MIXED_KINDS)
    const at = this.#lastSetAt = Math.max(Date.now(), this.#lastSetAt)
    if (!this.#local.set(reference.kind, reference.id, feature, micros, at, this.#capacity)) {
      if (!this.#overflow.set(reference.kind, reference.id, feature, micros, at, OVERFLOW_ITEMIZED)) this.#counters.dropped.overflow.add(1, 0)
    }
    if (this.#local.size >= this.#capacity && !this.#earlyFlushScheduled) {
      this.#earlyFlushScheduled = true
      setImmediate(() => { void this.flush() })
    }
    return true
  }

  /**
   * Asks an adapter's `customer` function who pays for `request` and hands the answer to `then`
   * (at once, or when its promise resolves); `undefined` leaves the request unmetered. A throw or
   * a rejection is counted and logged, never passed on to the request.
   */
  withCustomer<Request> (customerOf: CustomerOf<Request>, request: Request, origin: string, then: (customer: CustomerRef) => void): void {
    let customer
    try {
      customer = customerOf(request)
    } catch (error) {
      this.customerFailed(error, origin)
      return
    }
    if (customer === undefined) return
    if (typeof (customer as Promise<unknown>).then === 'function') {
      (customer as Promise<CustomerRef | undefined>).then(
        resolved => { if (resolved !== undefined) then(resolved) },
        error => { this.customerFailed(error, origin) })
      return
    }
    then(customer as CustomerRef)
  }

  /**
   * Counts a request whose `customer` function threw or rejected; logged once per origin.
   * Adapters call it so the failure never reaches the request.
   */
  customerFailed (error: unknown, origin = ''): void {
    this.#counters.refused.customerError++
    const key = `customerError\n${origin}`
    if (this.#invalidLogged.has(key)) return
    this.#invalidLogged.add(key)
    this.#logger.error({ err: error, origin }, 'kinde-metering: the customer function threw; the request was not metered')
  }

  /**
   * Counts a response whose `countStatus` threw: it is not metered. Logged once per origin;
   * adapters call it so the failure never reaches the request.
   */
  countStatusFailed (error: unknown, origin = ''): void {
    this.#counters.refused.countStatusError++
    const key = `countStatusError\n${origin}`
    if (this.#invalidLogged.has(key)) return
    this.#invalidLogged.add(key)
    this.#logger.error({ err: error, origin }, 'kinde-metering: countStatus threw; the response was not metered')
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
   * Resolves once the journal (option `journal`) has taken over the usage that processes which
   * died left in its directory; the next flush delivers it. Resolves at once without a journal.
   */
  ready (): Promise<void> {
    return this.#ready
  }

  /** A snapshot of pending, sent and dropped usage; cheap enough to serve from a health route. */
  stats (): MeteringStats {
    const held = this.#store.pending()
    const oldest = Math.min(held.oldest, this.#local.oldest)
    return {
      pending: { keys: held.keys + this.#local.size, units: formatMicros(addMicros(held.micros, this.#local.total())) },
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
      journal: this.#journal?.stats(),
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
    clearTimeout(this.#timer)
    clearInterval(this.#syncTimer)
    this.#shutdownDeadline = Date.now() + this.config.shutdownTimeout
    const outcome: CloseOutcome = { sent: 0, dropped: 0 }
    // One drain up to the shutdown's deadline: each flush of the close waits every pause and backoff
    // that ends before it; between flushes that delivered nothing, a backoff that is cut to the time left.
    for (let idle = 0; ;) {
      const flushed = await this.flush()
      outcome.sent += flushed.sent
      // A shared store keeps what remains for the rest of the fleet.
      if (this.#store.shared === true || this.stats().pending.keys === 0) break
      // Kinde asked for a pause that outlasts the deadline: nothing can go before it.
      if (this.#delivery.blockedUntil() >= this.#shutdownDeadline) break
      idle = flushed.sent > 0 ? 0 : idle + 1
      if (idle > 0) {
        const left = this.#shutdownDeadline - Date.now()
        await sleep(Math.min(left, this.config.retry.maxDelay, this.config.retry.baseDelay * 2 ** (idle - 1)))
      }
      // No send starts after the deadline: what remains is reported now.
      if (Date.now() >= this.#shutdownDeadline) break
    }
    if (this.#store.shared !== true) outcome.dropped = await this.#dropRemaining()
    await this.#store.close?.()
    await this.#journal?.close()
    await this.#http.close()
    return outcome
  }

  /** Reports everything still pending once shutdownTimeout ran out. */
  async #dropRemaining (): Promise<number> {
    // Only a store that is not shared gets here, and such a store always hands over a batch.
    const { entries } = (await this.#store.take())!
    this.#drops.report(entries.map(entry => ({ entry })), 'shutdown')
    await this.#store.settle()
    await this.#deadLetter?.written()
    await this.#journal?.settled(entries, [])
    return entries.length
  }

  #startFlush (): Promise<FlushOutcome> {
    const flush = this.#runFlush().finally(() => {
      // With a flush queued, this one stays current until the queued one starts: a caller resumed
      // by this flush's end and calling flush() again must join the queued flush, not start a third
      // beside it.
      if (this.#current === flush && this.#next === undefined) this.#current = undefined
    })
    this.#current = flush
    return flush
  }

  async #runFlush (): Promise<FlushOutcome> {
    const startedAt = Date.now()
    const outcome: FlushOutcome = { startedAt, durationMs: 0, sent: 0, pending: 0, dropped: 0, delivered: false }
    try {
      this.#reportOverflow()
      await this.#sync()
      await this.#ready
      await this.#recover()
      const flushDeadline = startedAt + this.config.flushInterval
      // Sends held (429 pause, refused token) past this flush's slot: pending usage waits for the
      // pause where it is, rather than being taken and put back by flush after empty flush.
      const held = !this.#closed && this.#delivery.blockedUntil() > flushDeadline
      const batch = held ? undefined : await this.#store.take()
      if (batch !== undefined) {
        outcome.delivered = true
        const result = await this.#delivery.deliver(batch, {
          // During the close its deadline is the only one, also for a flush begun before it.
          deadline: () => this.#closed ? this.#shutdownDeadline : flushDeadline,
          onSending: this.#journal?.sending.bind(this.#journal),
          onSettled: this.#settled
        })
        outcome.sent = result.sent
        outcome.dropped = result.dropped
        outcome.pending = result.leftover.entries.length
        if (outcome.pending > 0) await this.#store.putBack(result.leftover)
        await this.#store.settle()
        // The journal forgets dropped usage only once the dead letter holds it.
        await this.#deadLetter?.written()
        await this.#journal?.settled(batch.entries, result.leftover.entries)
      }
    } catch (error) {
      outcome.error = (error as Error).message
      this.#logger.error({ err: error }, 'kinde-metering: flush failed; pending usage is kept for the next one')
    }
    this.#capacity = Math.max(0, this.config.maxPendingKeys - this.#store.pending().keys)
    this.#earlyFlushScheduled = false
    outcome.durationMs = Date.now() - startedAt
    this.#counters.lastFlush = outcome
    this.#logger.debug({ ...outcome }, 'kinde-metering: flush')
    return outcome
  }

  async #timedFlush (): Promise<void> {
    await this.flush()
    if (!this.#closed) this.#timer.refresh()
  }

  /**
   * Moves local usage into the store between flushes. What the store then still holds in this
   * process (a shared store while its backend is unreachable) counts against maxPendingKeys.
   */
  async #timedSync (): Promise<void> {
    await this.#sync()
    this.#capacity = Math.max(0, this.config.maxPendingKeys - this.#store.pending().keys)
  }

  /** Moves what was recorded locally into the store. */
  async #sync (): Promise<void> {
    const batch = this.#local.drain()
    if (batch.entries.length === 0) return
    this.#journal?.append(batch.entries)
    await this.#store.add(batch)
  }

  /** Called as soon as a record needs no more delivery (accepted, or reported dropped): the store and the journal forget its usage at once. */
  readonly #settled = (entries: UsageEntry[]): void => {
    this.#store.settledEntries?.(entries)
    this.#journal?.settledEntries(entries)
  }

  /** Takes over the journals of dead processes: their usage joins the store, for the next flush. */
  async #recover (): Promise<void> {
    if (this.#journal === undefined) return
    const recovered = await this.#journal.recover()
    this.#drops.report(recovered.ambiguous, 'ambiguous')
    await this.#deadLetter?.written()
    if (recovered.pending.entries.length > 0) await this.#store.add(recovered.pending)
  }

  /** Reports usage refused for want of room since the last flush: once per flush, never silently. */
  #reportOverflow (): void {
    const itemized = this.#overflow.drain()
    if (itemized.entries.length === 0) return
    this.#drops.report(itemized.entries.map(entry => ({ entry })), 'overflow')
  }

  #refuse (counter: 'invalidValue' | 'invalidCustomer' | 'mixedKinds', origin: string, feature: string, message: string): false {
    this.#counters.refused[counter]++
    const key = `${counter}\n${origin}\n${String(feature)}`
    if (!this.#invalidLogged.has(key) && this.#invalidLogged.size < 1000) {
      this.#invalidLogged.add(key)
      this.#logger.warn({ origin, feature }, `kinde-metering: usage not recorded: ${message}`)
    }
    return false
  }
}
