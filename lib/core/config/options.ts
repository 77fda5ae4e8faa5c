// lib/core/config/: options in, one frozen validated configuration out.
/**
 * Turns the options a user passes, plus the environment, into one frozen, fully defaulted
 * configuration, or throws an {@link InvalidOptionError} naming the option at fault.
 */
import { InvalidOptionError } from '../report/errors.js'
import { rejectUnknownKeys } from './option-keys.js'
import { checkStore } from '../store/check-store.js'
import type { AmbiguousPolicy, CustomerRef, Logger, OnDrop } from '../usage/types.js'
import type { UsageStore } from '../store/usage-store.js'
import { milliseconds, positiveInteger, positiveNumber } from './checks.js'
import { resolveJournalConfig, type JournalConfig, type JournalOptions } from './journal-options.js'
import { resolveDeadLetterConfig, type DeadLetterConfig, type DeadLetterOptions } from './dead-letter-options.js'

export type { AmbiguousPolicy }

/** A source of access tokens for users who manage the M2M token themselves. */
export type AccessTokenSource = string | (() => string | Promise<string>)

/** Who pays for a request, as the `customer` option says: a reference, `undefined` (not metered), or a promise of either. */
export type CustomerOf<Request> = (request: Request) => CustomerRef | undefined | Promise<CustomerRef | undefined>

/** Options shared by every host (Fastify, Express, the bare core). */
export interface MeteringOptions<Request = unknown> {
  /**
   * Kinde domain: `https://acme.kinde.com`, `acme.kinde.com`, or `http://127.0.0.1:PORT` for the
   * emulator. Default: env `KINDE_DOMAIN`. Custom domains do not serve the Management API.
   */
  domain?: string
  /**
   * Client id of a Kinde machine-to-machine application authorized for the Kinde Management API
   * with the scope `create:meter_usage`, plus `read:users`, `read:organizations` and
   * `read:billing_agreements` when customers are named by `userId`, `orgCode` or `customerId`.
   * Default: env `KINDE_MANAGEMENT_CLIENT_ID`.
   */
  clientId?: string
  /** M2M application client secret. Default: env `KINDE_MANAGEMENT_CLIENT_SECRET`. Never logged. */
  clientSecret?: string
  /**
   * A Management API access token (with the scopes of `clientId`), or a function returning one,
   * used instead of client credentials: `clientId` and `clientSecret` are then not needed. The
   * function is called at every send; cache inside it. Default: none.
   */
  accessToken?: AccessTokenSource
  /**
   * Who pays for a request: `{ agreementId }`, `{ customerId }`, `{ userId }` or `{ orgCode }`;
   * `undefined` leaves the request unmetered. May return a promise. Errors are counted and
   * logged, never thrown into the request. Default: the adapter's (Fastify: the verified token in
   * `request.user`, its `org_code` as `{ orgCode }`, else its `sub` as `{ userId }`).
   */
  customer?: CustomerOf<Request>
  /**
   * Milliseconds between deliveries; a delivery retries within this time, then leaves what is
   * left for the next one. Default 60,000 (one minute).
   */
  flushInterval?: number
  /**
   * Milliseconds `close()` keeps retrying before it reports what remains through `onDrop` with
   * reason `shutdown`. Default 10,000 (ten seconds).
   */
  shutdownTimeout?: number
  /** Requests to Kinde in flight at once, and connections kept open to it. Default 4. */
  concurrency?: number
  /** Milliseconds before a request to Kinde times out (connect, headers, body each). Default 10,000 (ten seconds). */
  requestTimeout?: number
  /**
   * Whether a route meter counts a response with this status. Default: status below 400.
   * Amounts a handler records with `reply.meter()` (Express: `res.meter()`) always count.
   */
  countStatus?: (statusCode: number) => boolean
  /**
   * Called with records that will not be delivered, with the reason, so they can be kept or
   * replayed. Default: none; every drop is logged and counted in `stats().dropped` either way.
   */
  onDrop?: OnDrop
  /**
   * What to do when a send failed in a way that may have been applied (timeout or reset after
   * the request was written, 500, 504): `'retry'` (at-least-once, default) or `'drop'`
   * (at-most-once, reported through `onDrop` with reason `ambiguous`).
   */
  ambiguous?: AmbiguousPolicy
  /**
   * Distinct (customer, feature) pairs held pending before usage of new pairs is dropped with
   * reason `overflow`; reaching it starts an early flush. Default 100,000.
   */
  maxPendingPairs?: number
  /** Client-side budget of requests to Kinde per second. Default: none (Kinde's 429s govern). */
  maxRequestsPerSecond?: number
  /** Retry policy for sends that were not applied. */
  retry?: {
    /** Attempts per record within one flush, first included. Default 4. */
    attempts?: number
    /** Milliseconds of the first backoff; doubles each attempt, with full jitter. Default 200. */
    baseDelay?: number
    /** Milliseconds the backoff never exceeds. Default 10,000. */
    maxDelay?: number
  }
  /** Milliseconds customer-to-agreement look-ups are cached. Default 600,000 (ten minutes). */
  agreementCacheTtl?: number
  /** Entries the look-up cache holds at most. Default 10,000. */
  agreementCacheSize?: number
  /**
   * Where the core logs (pino-compatible). Default: the Fastify app's logger under the plugin;
   * otherwise warnings and errors on stderr.
   */
  logger?: Logger
  /** Where pending usage is kept between flushes. Default: in memory, per process. */
  store?: UsageStore
  /**
   * Journals pending usage to files in `journal.dir`, so that usage of a process that is killed
   * is delivered by the next one started on the same directory. Default: none (memory only).
   */
  journal?: JournalOptions
  /**
   * Keeps every record reported dropped (before `onDrop` is called) as a line in a file of
   * `deadLetter.dir`, for `kinde-metering replay` to deliver later; `false` keeps none. Default:
   * the folder `dead-letter` of `journal.dir` with option `journal`, else none.
   */
  deadLetter?: DeadLetterOptions | false
}

/** The validated configuration the core runs with. */
export interface MeteringConfig {
  readonly origin: string
  readonly credentials: { readonly clientId: string, readonly clientSecret: string } | undefined
  readonly accessToken: AccessTokenSource | undefined
  readonly flushInterval: number
  readonly shutdownTimeout: number
  readonly concurrency: number
  readonly requestTimeout: number
  readonly countStatus: (statusCode: number) => boolean
  readonly onDrop: OnDrop | undefined
  readonly ambiguous: AmbiguousPolicy
  readonly maxPendingPairs: number
  readonly maxRequestsPerSecond: number | undefined
  readonly retry: { readonly attempts: number, readonly baseDelay: number, readonly maxDelay: number }
  readonly agreementCacheTtl: number
  readonly agreementCacheSize: number
  readonly journal: JournalConfig | undefined
  readonly deadLetter: DeadLetterConfig | undefined
}

const defaultCountStatus = (statusCode: number): boolean => statusCode < 400

/** Every key of {@link MeteringOptions}: any other is refused. */
const OPTION_KEYS: ReadonlyArray<keyof MeteringOptions> = [
  'domain', 'clientId', 'clientSecret', 'accessToken', 'customer', 'flushInterval', 'shutdownTimeout',
  'concurrency', 'requestTimeout', 'countStatus', 'onDrop', 'ambiguous', 'maxPendingPairs',
  'maxRequestsPerSecond', 'retry', 'agreementCacheTtl', 'agreementCacheSize', 'logger', 'store', 'journal', 'deadLetter'
]
const RETRY_KEYS: ReadonlyArray<keyof NonNullable<MeteringOptions['retry']>> = ['attempts', 'baseDelay', 'maxDelay']

/**
 * Validates options, fills defaults from the environment and constants, and freezes the result.
 * @throws InvalidOptionError naming the first option at fault, or an option key it does not know.
 */
export function resolveConfig (options: MeteringOptions<any>, env: NodeJS.ProcessEnv = process.env): MeteringConfig {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options', 'must be an object')
  }
  rejectUnknownKeys(options, OPTION_KEYS)
  if (options.store !== undefined) checkStore(options.store)
  const origin = resolveOrigin(options.domain ?? env.KINDE_DOMAIN)
  const accessToken = options.accessToken
  if (accessToken !== undefined && typeof accessToken !== 'function' && !nonEmptyString(accessToken)) {
    throw new InvalidOptionError('accessToken', 'must be a non-empty string or a function returning one')
  }
  const credentials = accessToken === undefined ? resolveCredentials(options, env) : undefined
  optionalFunction(options, 'customer')
  optionalFunction(options, 'countStatus')
  optionalFunction(options, 'onDrop')
  if (options.ambiguous !== undefined && options.ambiguous !== 'retry' && options.ambiguous !== 'drop') {
    throw new InvalidOptionError('ambiguous', "must be 'retry' or 'drop'")
  }
  const retry = options.retry ?? {}
  if (typeof retry !== 'object') throw new InvalidOptionError('retry', 'must be an object')
  rejectUnknownKeys(retry, RETRY_KEYS, 'retry.')
  const baseDelay = milliseconds('retry.baseDelay', retry.baseDelay, 200)
  const journal = resolveJournalConfig(options.journal, options.store?.shared === true)
  return Object.freeze({
    origin,
    credentials,
    accessToken,
    flushInterval: milliseconds('flushInterval', options.flushInterval, 60_000), // 1 min
    shutdownTimeout: milliseconds('shutdownTimeout', options.shutdownTimeout, 10_000), // 10 s
    concurrency: positiveInteger('concurrency', options.concurrency, 4),
    requestTimeout: milliseconds('requestTimeout', options.requestTimeout, 10_000), // 10 s
    countStatus: options.countStatus ?? defaultCountStatus,
    onDrop: options.onDrop,
    ambiguous: options.ambiguous ?? 'retry',
    maxPendingPairs: positiveInteger('maxPendingPairs', options.maxPendingPairs, 100_000),
    maxRequestsPerSecond: options.maxRequestsPerSecond === undefined
      ? undefined
      : positiveNumber('maxRequestsPerSecond', options.maxRequestsPerSecond, 0),
    retry: Object.freeze({
      attempts: positiveInteger('retry.attempts', retry.attempts, 4),
      baseDelay,
      maxDelay: milliseconds('retry.maxDelay', retry.maxDelay, Math.max(10_000, baseDelay)) // 10 s
    }),
    agreementCacheTtl: milliseconds('agreementCacheTtl', options.agreementCacheTtl, 600_000), // 10 min
    agreementCacheSize: positiveInteger('agreementCacheSize', options.agreementCacheSize, 10_000),
    journal,
    deadLetter: resolveDeadLetterConfig(options.deadLetter, journal)
  })
}

/**
 * Accepts `acme.kinde.com`, `https://acme.kinde.com/` or `http://127.0.0.1:PORT`; returns the origin.
 * @throws InvalidOptionError naming `domain` when it is missing or not a bare domain.
 */
export function resolveOrigin (domain: unknown): string {
  if (!nonEmptyString(domain)) {
    throw new InvalidOptionError('domain', 'is required (or set KINDE_DOMAIN), e.g. "https://acme.kinde.com"')
  }
  const withScheme = /^https?:\/\//i.test(domain) ? domain : `https://${domain}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw new InvalidOptionError('domain', `is not a valid URL: ${JSON.stringify(domain)}`)
  }
  if (url.pathname !== '/' || url.search !== '' || url.username !== '') {
    // Credentials in the URL are never echoed back: only the host is safe to quote then.
    const given = url.username === '' ? JSON.stringify(domain) : 'a URL with credentials'
    throw new InvalidOptionError('domain', `must be a bare domain without path, query or credentials, got ${given}; did you mean ${JSON.stringify(url.host)}?`)
  }
  return url.origin
}

function resolveCredentials (options: MeteringOptions<any>, env: NodeJS.ProcessEnv): { clientId: string, clientSecret: string } {
  const clientId = options.clientId ?? env.KINDE_MANAGEMENT_CLIENT_ID
  const clientSecret = options.clientSecret ?? env.KINDE_MANAGEMENT_CLIENT_SECRET
  if (!nonEmptyString(clientId)) {
    throw new InvalidOptionError('clientId', 'is required (or set KINDE_MANAGEMENT_CLIENT_ID, or pass accessToken)')
  }
  if (!nonEmptyString(clientSecret)) {
    // The value itself is never echoed: it is a secret.
    throw new InvalidOptionError('clientSecret', 'is required (or set KINDE_MANAGEMENT_CLIENT_SECRET, or pass accessToken)')
  }
  return Object.freeze({ clientId, clientSecret })
}

function nonEmptyString (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0
}

function optionalFunction (options: Record<string, any>, name: string): void {
  if (options[name] !== undefined && typeof options[name] !== 'function') {
    throw new InvalidOptionError(name, `must be a function, got ${typeof options[name]}`)
  }
}
