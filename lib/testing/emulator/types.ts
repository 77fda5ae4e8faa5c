/**
 * The public types of the Kinde emulator, exported by `kinde-metering/testing`.
 *
 * Its options, the data it is seeded with, the faults it injects, what it reports back to a test,
 * and the running emulator itself.
 * @module
 */
/** A billing agreement (a customer's subscription to a plan) known to the emulator. */
export interface EmulatorAgreement {
  /** Agreement id, e.g. `agreement_0195ac80…`; the `customer_agreement_id` of meter usage. */
  id: string
  /** Billing customer that holds the agreement, e.g. `customer_0195ac80…`. */
  customerId: string
  /** Plan the agreement is taken from; default `'emulator_plan'`. */
  planCode?: string
  /** ISO 8601 date-time the agreement expired or expires; `null`/absent = open-ended. A past date means expired. */
  expiresOn?: string | null
  /** Feature codes of the agreement's entitlements: the `billing_feature_code`s usage can be recorded against. */
  features: string[]
}

/** A Kinde user; `customerId` becomes `billing.customer_id` with `expand=billing`. */
export interface EmulatorUser {
  /** User id, the `sub` of the user's access token, e.g. `kp_…`. */
  id: string
  /** Billing customer id; absent = the user is not a billing customer. */
  customerId?: string
}

/**
 * A Kinde organization; `customerId` becomes `billing.billing_customer_id` with `expand=billing`,
 * and `billing.agreements` lists that customer's unexpired agreements.
 */
export interface EmulatorOrganization {
  /** Organization code, the `org_code` of a user's access token, e.g. `org_…`. */
  code: string
  /** Billing customer id; absent = the organization is not a billing customer. */
  customerId?: string
}

/** The emulated endpoints a fault can target. */
export type FaultEndpoint = 'meter_usage' | 'token' | 'user' | 'organization' | 'agreements'

/** A fault rule: which requests it hits and what happens to them. */
export interface FaultSpec {
  /** Endpoint whose requests the rule hits; default `'meter_usage'`. */
  endpoint?: FaultEndpoint
  /**
   * `'status'`: answer `status` with a Kinde error body instead of the real answer.
   * `'reset'`: destroy the connection without answering.
   * `'delay'`: wait `delayMs`, then answer normally (unless the client has gone by then).
   */
  kind: 'status' | 'reset' | 'delay'
  /** HTTP status for kind `'status'`, e.g. 429, 500, 502, 503, 504; default 500. */
  status?: number
  /** Seconds sent in `RateLimit-Reset` when `status` is 429; default 1. */
  rateLimitReset?: number
  /** Seconds sent in `Retry-After`; absent = no such header (Kinde does not document it). */
  retryAfter?: number
  /**
   * Process the request for real before the fault takes effect, so a meter usage record is applied
   * although the client sees an error, a reset or (with a delay longer than its timeout) nothing:
   * the ambiguous outcomes a retrying client can double-count. Default false: the fault strikes
   * first and nothing is applied (a delayed request is processed after the wait only if its client
   * is still connected).
   */
  apply?: boolean
  /** Milliseconds to wait for kind `'delay'`; default 0. */
  delayMs?: number
  /** Number of requests the rule hits before it retires; default 1, or unlimited when `probability` is set. */
  times?: number
  /** Chance (0..1) that a matching request is hit, drawn from the emulator's seeded PRNG; absent = every one. */
  probability?: number
}

/** Options of `startKindeEmulator`. */
export interface EmulatorOptions {
  /** TCP port on 127.0.0.1; default 0 (an ephemeral port, see {@link KindeEmulator.url}). */
  port?: number
  /** Client id of the emulated M2M application; default `'emulator-client-id'`. */
  clientId?: string
  /** Client secret of the emulated M2M application; default `'emulator-client-secret'`. */
  clientSecret?: string
  /**
   * Scopes granted to the M2M application; default `create:meter_usage read:users
   * read:organizations read:billing_agreements`.
   */
  scopes?: string[]
  /** Lifetime of M2M tokens in seconds, reported as `expires_in`; default 86400. A token past it gets 401. */
  tokenTtlSeconds?: number
  /** Users known at start. */
  users?: EmulatorUser[]
  /** Organizations known at start. */
  organizations?: EmulatorOrganization[]
  /** Agreements known at start; their order is the order of agreement listings. */
  agreements?: EmulatorAgreement[]
  /** Page size of agreement listings when `page_size` is not sent; default 10 (as Kinde). */
  pageSize?: number
  /** Seed of the PRNG behind probabilistic faults; default 1. The same seed gives the same hits. */
  seed?: number
  /**
   * Token-bucket limiter on `/api/*` (bursts of up to one second's worth): a request over the limit
   * gets 429 `THROTTLED` with `RateLimit-Reset`. Absent = unlimited.
   */
  rateLimit?: { requestsPerSecond: number }
}

/** A meter usage request as the emulator received it. */
export interface ReceivedRecord {
  /** Fields as sent; a non-string value appears JSON-encoded and a missing required one as `''`. */
  customer_agreement_id: string
  billing_feature_code: string
  meter_value: string
  meter_usage_timestamp?: string
  meter_type_code?: string
  /** Whether the record was added to {@link KindeEmulator.usage}. */
  applied: boolean
  /** HTTP status answered; 0 when no answer was sent (reset, or the client left during a delay). */
  status: number
}

/** One fault that hit a request. */
export interface InjectedFault {
  endpoint: string
  kind: string
  /** Status answered, for kind `'status'`. */
  status?: number
  /** Whether the hit request's meter usage was applied nonetheless. */
  applied: boolean
}

/** A running emulator. */
export interface KindeEmulator {
  /** `http://127.0.0.1:PORT`: the Kinde domain to configure clients with; the M2M audience is `${url}/api`. */
  url: string
  /** Client id the token endpoint accepts. */
  clientId: string
  /** Client secret the token endpoint accepts. */
  clientSecret: string
  /**
   * Usage recorded for (agreement, feature): the exact decimal sum of applied deltas since the last
   * applied absolute value, without trailing zeros (`'1000'`, `'0.3'`); `'0'` when none.
   */
  usage(agreementId: string, feature: string): string
  /** Every meter usage request whose body parsed as a JSON object, in arrival order. */
  records: ReceivedRecord[]
  /** Requests received per endpoint: `token`, `meter_usage`, `user`, `organization`, `agreements`, `jwks`, `other`. */
  calls: Record<string, number>
  /** Faults injected so far, in order, so tests can bound over- and under-counting. */
  injected: InjectedFault[]
  /**
   * Adds a fault rule; rules are tried in the order added and the first that hits wins. Faults
   * strike before authentication, as at a gateway, and after the rate limiter, whose 429s are not
   * listed in {@link injected}.
   */
  fault(spec: FaultSpec): void
  /** Removes every fault rule. */
  clearFaults(): void
  /** Makes every M2M token issued so far answer 401, as after expiry. */
  expireTokens(): void
  /** Adds an agreement, or replaces the one with the same id (keeping its place in listings). */
  addAgreement(a: EmulatorAgreement): void
  /** Adds a user, or replaces the one with the same id. */
  addUser(u: EmulatorUser): void
  /** Adds an organization, or replaces the one with the same code. */
  addOrganization(o: EmulatorOrganization): void
  /** Scopes granted to M2M tokens issued from now on. */
  setScopes(scopes: string[]): void
  /**
   * Mints an RS256 user access token like the one Kinde issues to a signed-in user, verifiable
   * with the JWKS at {@link jwksUrl}. Claims: `iss` = {@link url}, `aud` default
   * `['emulator-api']` (`EMULATOR_USER_AUDIENCE`), `iat`, `exp` = `iat` +
   * `expiresInSeconds` (default 3600; negative gives an expired token), `jti`, then every other
   * claim given (which may override the defaults).
   */
  mintAccessToken(claims: {
    sub: string
    org_code?: string
    aud?: string | string[]
    expiresInSeconds?: number
    [claim: string]: unknown
  }): string
  /** `${url}/.well-known/jwks.json` (also served at `/.well-known/jwks`). */
  jwksUrl: string
  /** Stops the server, destroys open keep-alive connections and cuts pending delays short. */
  close(): Promise<void>
}
