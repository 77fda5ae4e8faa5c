/**
 * A local Kinde emulator: a real HTTP server on 127.0.0.1 that answers the parts of Kinde's
 * Management API that kinde-metering uses (M2M tokens, meter usage, user / organization /
 * agreement look-ups, JWKS), with the status codes and bodies documented by Kinde, plus
 * injectable faults so clients can be tested against throttling, outages and lost answers.
 * @module
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { sharedSigningKey, signJwt, type SigningKey } from './jwt.js'

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

/** Options of {@link startKindeEmulator}. */
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
   * `['emulator-api']` ({@link EMULATOR_USER_AUDIENCE}), `iat`, `exp` = `iat` +
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

/** Default `aud` of tokens from {@link KindeEmulator.mintAccessToken}. */
export const EMULATOR_USER_AUDIENCE = 'emulator-api'

const DEFAULT_SCOPES = ['create:meter_usage', 'read:users', 'read:organizations', 'read:billing_agreements']
const DEFAULT_PLAN_CODE = 'emulator_plan'
/** Kinde rejects larger pages with PAGE_SIZE_LIMIT_EXCEEDED. */
const MAX_PAGE_SIZE = 100

/**
 * Starts an emulator on 127.0.0.1.
 * @param options - identity, data, token lifetime, paging, fault seed and rate limit; all optional.
 * @returns the running emulator; close it with {@link KindeEmulator.close}.
 */
export async function startKindeEmulator(options: EmulatorOptions = {}): Promise<KindeEmulator> {
  const key = await sharedSigningKey()
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  return new Emulator(server, `http://127.0.0.1:${port}`, key, options)
}

type Endpoint = FaultEndpoint | 'jwks' | 'other'

/** What a handler answers. */
interface Reply {
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** One request on its way through the emulator. */
interface Exchange {
  req: IncomingMessage
  res: ServerResponse
  url: URL
  body: string
  /** The meter usage body, when it parsed as a JSON object. */
  input?: Record<string, unknown>
  record?: ReceivedRecord
  applied: boolean
}

interface Route {
  endpoint: Endpoint
  /** Scope a bearer token needs; absent = no token needed. */
  scope?: string
  handle(exchange: Exchange): Reply
}

interface IssuedToken {
  /** Epoch milliseconds. */
  expiresAt: number
  scopes: Set<string>
}

/** An agreement with its defaults filled in. */
interface StoredAgreement {
  id: string
  customerId: string
  planCode: string
  expiresOn: string | null
  features: string[]
}

/** A validated meter usage body. */
interface MeterUsage {
  customer_agreement_id: string
  billing_feature_code: string
  meter_value: string
  meter_type_code?: 'absolute' | 'delta'
}

class Emulator implements KindeEmulator {
  readonly url: string
  readonly jwksUrl: string
  readonly clientId: string
  readonly clientSecret: string
  readonly records: ReceivedRecord[] = []
  readonly injected: InjectedFault[] = []
  readonly calls: Record<Endpoint, number> = {
    token: 0, meter_usage: 0, user: 0, organization: 0, agreements: 0, jwks: 0, other: 0,
  }

  readonly #server: Server
  readonly #key: SigningKey
  readonly #tokenTtlSeconds: number
  readonly #pageSize: number
  readonly #faults: FaultRules
  readonly #limiter: TokenBucket | undefined
  readonly #createdOn = new Date().toISOString()
  /** Aborted by close() so pending delays end at once. */
  readonly #closing = new AbortController()
  readonly #inflight = new Set<Promise<void>>()
  readonly #tokens = new Map<string, IssuedToken>()
  readonly #usage = new Map<string, Decimal>()
  readonly #users = new Map<string, EmulatorUser>()
  readonly #organizations = new Map<string, EmulatorOrganization>()
  readonly #agreements = new Map<string, StoredAgreement>()
  #scopes: string[]

  readonly #notFound: Route = { endpoint: 'other', handle: () => notFound() }
  readonly #routes = new Map<string, Route>([
    ['POST /oauth2/token', { endpoint: 'token', handle: (x) => this.#token(x) }],
    ['POST /api/v1/billing/meter_usage', { endpoint: 'meter_usage', scope: 'create:meter_usage', handle: (x) => this.#meterUsage(x) }],
    ['GET /api/v1/user', { endpoint: 'user', scope: 'read:users', handle: (x) => this.#user(x) }],
    ['GET /api/v1/organization', { endpoint: 'organization', scope: 'read:organizations', handle: (x) => this.#organization(x) }],
    ['GET /api/v1/billing/agreements', { endpoint: 'agreements', scope: 'read:billing_agreements', handle: (x) => this.#listAgreements(x) }],
    ['GET /.well-known/jwks.json', { endpoint: 'jwks', handle: () => this.#jwks() }],
    ['GET /.well-known/jwks', { endpoint: 'jwks', handle: () => this.#jwks() }],
  ])

  constructor(server: Server, url: string, key: SigningKey, options: EmulatorOptions) {
    this.#server = server
    this.#key = key
    this.url = url
    this.jwksUrl = `${url}/.well-known/jwks.json`
    this.clientId = options.clientId ?? 'emulator-client-id'
    this.clientSecret = options.clientSecret ?? 'emulator-client-secret'
    this.#scopes = [...(options.scopes ?? DEFAULT_SCOPES)]
    this.#tokenTtlSeconds = options.tokenTtlSeconds ?? 86400
    this.#pageSize = options.pageSize ?? 10
    this.#faults = new FaultRules(options.seed ?? 1)
    this.#limiter = options.rateLimit && new TokenBucket(options.rateLimit.requestsPerSecond)
    for (const user of options.users ?? []) this.addUser(user)
    for (const organization of options.organizations ?? []) this.addOrganization(organization)
    for (const agreement of options.agreements ?? []) this.addAgreement(agreement)
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#track(this.#serve(req, res)))
  }

  usage(agreementId: string, feature: string): string {
    const total = this.#usage.get(usageKey(agreementId, feature))
    return total ? formatDecimal(total) : '0'
  }

  fault(spec: FaultSpec): void {
    this.#faults.add(spec)
  }

  clearFaults(): void {
    this.#faults.clear()
  }

  expireTokens(): void {
    for (const token of this.#tokens.values()) token.expiresAt = 0
  }

  addAgreement(a: EmulatorAgreement): void {
    this.#agreements.set(a.id, {
      id: a.id,
      customerId: a.customerId,
      planCode: a.planCode ?? DEFAULT_PLAN_CODE,
      expiresOn: a.expiresOn ?? null,
      features: [...a.features],
    })
  }

  addUser(u: EmulatorUser): void {
    this.#users.set(u.id, { ...u })
  }

  addOrganization(o: EmulatorOrganization): void {
    this.#organizations.set(o.code, { ...o })
  }

  setScopes(scopes: string[]): void {
    this.#scopes = [...scopes]
  }

  mintAccessToken(claims: Parameters<KindeEmulator['mintAccessToken']>[0]): string {
    const { expiresInSeconds = 3600, aud = [EMULATOR_USER_AUDIENCE], ...rest } = claims
    const iat = Math.floor(Date.now() / 1000)
    return signJwt({ iss: this.url, aud, iat, exp: iat + expiresInSeconds, jti: randomUUID(), ...rest }, this.#key)
  }

  async close(): Promise<void> {
    this.#closing.abort()
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    await closed
    await Promise.allSettled(this.#inflight)
  }

  /** Remembers a request being served, so close() can wait for it to settle. */
  #track(job: Promise<void>): void {
    this.#inflight.add(job)
    void job.finally(() => this.#inflight.delete(job))
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url as string, this.url)
    const route = this.#routes.get(`${req.method} ${url.pathname}`) ?? this.#notFound
    this.calls[route.endpoint] += 1
    const body = await readBody(req)
    // A client that leaves mid-body never sent a request Kinde would act on.
    if (body === undefined) return
    const exchange: Exchange = { req, res, url, body, applied: false }
    if (route.endpoint === 'meter_usage') this.#receive(exchange)
    const throttled = url.pathname.startsWith('/api/') ? this.#throttle() : undefined
    if (throttled) return this.#send(exchange, throttled)
    const fault = this.#faults.take(route.endpoint)
    if (fault) return this.#injectFault(exchange, route, fault)
    this.#send(exchange, this.#answer(route, exchange))
  }

  /** Notes a meter usage request in `records` as soon as its body is known to be a JSON object. */
  #receive(exchange: Exchange): void {
    const input = parseJsonObject(exchange.body)
    if (!input) return
    const record: ReceivedRecord = {
      customer_agreement_id: asText(input.customer_agreement_id),
      billing_feature_code: asText(input.billing_feature_code),
      meter_value: asText(input.meter_value),
      applied: false,
      status: 0,
    }
    if (input.meter_usage_timestamp !== undefined) record.meter_usage_timestamp = asText(input.meter_usage_timestamp)
    if (input.meter_type_code !== undefined) record.meter_type_code = asText(input.meter_type_code)
    this.records.push(record)
    exchange.input = input
    exchange.record = record
  }

  #throttle(): Reply | undefined {
    const waitSeconds = this.#limiter?.take()
    if (waitSeconds === undefined) return undefined
    return kindeError(429, 'THROTTLED', 'Request was throttled.', { 'ratelimit-reset': String(waitSeconds) })
  }

  async #injectFault(exchange: Exchange, route: Route, fault: FaultSpec): Promise<void> {
    const entry: InjectedFault = { endpoint: route.endpoint, kind: fault.kind, applied: false }
    if (fault.kind === 'status') entry.status = fault.status ?? 500
    this.injected.push(entry)
    const early = fault.apply === true ? this.#answer(route, exchange) : undefined
    if (fault.kind === 'delay') {
      await this.#pause(fault.delayMs ?? 0, exchange.req.socket)
      if (!exchange.req.socket.destroyed) this.#send(exchange, early ?? this.#answer(route, exchange))
    } else if (fault.kind === 'reset') {
      exchange.req.socket.destroy()
    } else {
      this.#send(exchange, faultReply(fault))
    }
    entry.applied = exchange.applied
  }

  /** Waits `ms`, or less if the client disconnects or the emulator closes. */
  #pause(ms: number, socket: Socket): Promise<void> {
    const closing = this.#closing.signal
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer)
        socket.off('close', finish)
        closing.removeEventListener('abort', finish)
        resolve()
      }
      const timer = setTimeout(finish, ms)
      socket.once('close', finish)
      closing.addEventListener('abort', finish, { once: true })
    })
  }

  #answer(route: Route, exchange: Exchange): Reply {
    const denied = route.scope === undefined ? undefined : this.#authorize(exchange.req, route.scope)
    return denied ?? route.handle(exchange)
  }

  #send(exchange: Exchange, reply: Reply): void {
    if (exchange.record) exchange.record.status = reply.status
    const json = JSON.stringify(reply.body)
    exchange.res.writeHead(reply.status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(json),
      ...reply.headers,
    })
    exchange.res.end(json)
  }

  #authorize(req: IncomingMessage, scope: string): Reply | undefined {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1]
    const token = bearer === undefined ? undefined : this.#tokens.get(bearer)
    if (!token) return kindeError(401, 'UNAUTHORIZED', 'Missing or unknown bearer token')
    if (Date.now() >= token.expiresAt) return kindeError(401, 'UNAUTHORIZED', 'Bearer token expired')
    if (!token.scopes.has(scope)) return kindeError(403, 'FORBIDDEN', 'invalid credentials')
    return undefined
  }

  #token(exchange: Exchange): Reply {
    const contentType = exchange.req.headers['content-type'] ?? ''
    if (!/^application\/x-www-form-urlencoded\b/i.test(contentType)) {
      return oauthError(400, 'invalid_request', 'The body must be application/x-www-form-urlencoded')
    }
    const form = new URLSearchParams(exchange.body)
    return this.#tokenRequestProblem(form) ?? this.#issueToken(form)
  }

  #tokenRequestProblem(form: URLSearchParams): Reply | undefined {
    const grantType = form.get('grant_type')
    if (!grantType) return oauthError(400, 'invalid_request', 'grant_type is required')
    if (grantType !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', `Unsupported grant_type ${grantType}`)
    const clientId = form.get('client_id')
    const clientSecret = form.get('client_secret')
    if (!clientId || !clientSecret) return oauthError(400, 'invalid_request', 'client_id and client_secret are required')
    if (clientId !== this.clientId || clientSecret !== this.clientSecret) {
      return oauthError(401, 'invalid_client', 'Client authentication failed')
    }
    if (form.get('audience') !== `${this.url}/api`) {
      return oauthError(400, 'invalid_request', `audience must be ${this.url}/api`)
    }
    const ungranted = requestedScopes(form).filter((scope) => !this.#scopes.includes(scope))
    if (ungranted.length > 0) return oauthError(400, 'invalid_scope', `Scopes not granted: ${ungranted.join(' ')}`)
    return undefined
  }

  #issueToken(form: URLSearchParams): Reply {
    const requested = requestedScopes(form)
    const scopes = requested.length > 0 ? requested : [...this.#scopes]
    const iat = Math.floor(Date.now() / 1000)
    const accessToken = signJwt({
      aud: [`${this.url}/api`],
      azp: this.clientId,
      exp: iat + this.#tokenTtlSeconds,
      gty: ['client_credentials'],
      iat,
      iss: this.url,
      jti: randomUUID(),
      scp: scopes,
    }, this.#key)
    this.#tokens.set(accessToken, { expiresAt: Date.now() + this.#tokenTtlSeconds * 1000, scopes: new Set(scopes) })
    return {
      status: 200,
      body: { access_token: accessToken, expires_in: this.#tokenTtlSeconds, token_type: 'Bearer', scope: scopes.join(' ') },
      headers: { 'cache-control': 'no-store' },
    }
  }

  #meterUsage(exchange: Exchange): Reply {
    const input = exchange.input
    if (!input) return kindeError(400, 'INVALID_REQUEST', 'The body must be a JSON object')
    const invalid = METER_USAGE_FIELDS.find((field) => !field.valid(input[field.name]))
    if (invalid) return kindeError(400, 'INVALID_REQUEST', `${invalid.name} ${invalid.rule}`)
    const usage = input as unknown as MeterUsage
    const problem = this.#unbillable(usage)
    if (problem) return problem
    this.#apply(usage)
    exchange.applied = true
    ;(exchange.record as ReceivedRecord).applied = true
    return { status: 200, body: { message: 'Success', code: 'OK' } }
  }

  /** Why usage cannot be recorded against the agreement and feature named, if it cannot. */
  #unbillable(usage: MeterUsage): Reply | undefined {
    const agreement = this.#agreements.get(usage.customer_agreement_id)
    if (!agreement) {
      return kindeError(400, 'AGREEMENT_NOT_FOUND', `customer_agreement_id ${usage.customer_agreement_id} does not exist`)
    }
    // Undocumented in Kinde; refusing makes a client that bills an expired agreement visible in tests.
    if (isExpired(agreement)) {
      return kindeError(400, 'AGREEMENT_EXPIRED', `customer_agreement_id ${agreement.id} expired on ${agreement.expiresOn}`)
    }
    if (!agreement.features.includes(usage.billing_feature_code)) {
      return kindeError(400, 'FEATURE_NOT_FOUND', `billing_feature_code ${usage.billing_feature_code} is not an entitlement of ${agreement.id}`)
    }
    return undefined
  }

  #apply(usage: MeterUsage): void {
    const key = usageKey(usage.customer_agreement_id, usage.billing_feature_code)
    const value = parseDecimal(usage.meter_value)
    const current = this.#usage.get(key)
    // Kinde leaves the default type undocumented; delta is the only reading under which omitting it is safe.
    const replaces = usage.meter_type_code === 'absolute' || current === undefined
    this.#usage.set(key, replaces ? value : addDecimals(current, value))
  }

  #user(exchange: Exchange): Reply {
    const id = exchange.url.searchParams.get('id')
    if (!id) return kindeError(400, 'INVALID_REQUEST', 'id is required')
    const user = this.#users.get(id)
    // Kinde does not document the answer for an unknown user; 400 is the error it declares.
    if (!user) return kindeError(400, 'USER_NOT_FOUND', `No user with id ${id}`)
    const billing = expands(exchange.url, 'billing') && user.customerId !== undefined
      ? { billing: { customer_id: user.customerId } }
      : {}
    return ok({
      id: user.id,
      is_suspended: false,
      total_sign_ins: 0,
      failed_sign_ins: 0,
      last_signed_in: null,
      created_on: this.#createdOn,
      ...billing,
    })
  }

  #organization(exchange: Exchange): Reply {
    const code = exchange.url.searchParams.get('code')
    if (!code) return kindeError(400, 'INVALID_REQUEST', 'code is required')
    const organization = this.#organizations.get(code)
    if (!organization) return kindeError(400, 'ORGANIZATION_NOT_FOUND', `No organization with code ${code}`)
    const customerId = organization.customerId
    const billing = expands(exchange.url, 'billing') && customerId !== undefined
      ? { billing: { billing_customer_id: customerId, agreements: this.#currentAgreementsOf(customerId) } }
      : {}
    return ok({
      code: organization.code,
      name: organization.code,
      handle: null,
      is_default: false,
      external_id: null,
      is_auto_membership_enabled: false,
      created_on: this.#createdOn,
      is_suspended: false,
      ...billing,
    })
  }

  /** The organization listing holds the agreements the customer is "currently subscribed to". */
  #currentAgreementsOf(customerId: string): Array<{ plan_code: string; agreement_id: string }> {
    return [...this.#agreements.values()]
      .filter((a) => a.customerId === customerId && !isExpired(a))
      .map((a) => ({ plan_code: a.planCode, agreement_id: a.id }))
  }

  #listAgreements(exchange: Exchange): Reply {
    const query = exchange.url.searchParams
    const customerId = query.get('customer_id')
    if (!customerId) return kindeError(400, 'INVALID_REQUEST', 'customer_id is required')
    if (!this.#isCustomer(customerId)) return kindeError(400, 'CUSTOMER_NOT_FOUND', `No billing customer ${customerId}`)
    const pageSize = parsePageSize(query.get('page_size'), this.#pageSize)
    if (typeof pageSize !== 'number') return pageSize
    const feature = query.get('feature_code')
    const matching = [...this.#agreements.values()]
      .filter((a) => a.customerId === customerId && (!feature || a.features.includes(feature)))
    const page = paginate(matching, query.get('starting_after'), query.get('ending_before'), pageSize)
    if ('status' in page) return page
    return ok({ code: 'OK', message: 'Success', has_more: page.hasMore, agreements: page.items.map(agreementBody) })
  }

  #isCustomer(customerId: string): boolean {
    const holds = (entry: { customerId?: string }): boolean => entry.customerId === customerId
    return [...this.#users.values()].some(holds) ||
      [...this.#organizations.values()].some(holds) ||
      [...this.#agreements.values()].some(holds)
  }

  #jwks(): Reply {
    return { status: 200, body: { keys: [this.#key.jwk] }, headers: { 'cache-control': 'public, max-age=3600' } }
  }
}

/** Reads a request body; undefined when the client disconnects before sending all of it. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = []
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer)
  } catch {
    return undefined
  }
  return Buffer.concat(chunks).toString('utf8')
}

function ok(body: unknown): Reply {
  return { status: 200, body }
}

/** Kinde's error body: `{ errors: [{ code, message }] }`. */
function kindeError(status: number, code: string, message: string, headers?: Record<string, string>): Reply {
  return { status, body: { errors: [{ code, message }] }, headers }
}

/** OAuth2 error body of the token endpoint. */
function oauthError(status: number, error: string, description: string): Reply {
  return { status, body: { error, error_description: description }, headers: { 'cache-control': 'no-store' } }
}

/** Kinde's unknown-route answer, whose `errors` is an object, not an array. */
function notFound(): Reply {
  return { status: 404, body: { errors: { code: 'ROUTE_NOT_FOUND', message: 'The requested API route does not exist' } } }
}

function faultReply(fault: FaultSpec): Reply {
  const status = fault.status ?? 500
  const headers: Record<string, string> = {}
  if (status === 429) headers['ratelimit-reset'] = String(fault.rateLimitReset ?? 1)
  if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter)
  if (status === 429) return kindeError(status, 'THROTTLED', 'Request was throttled.', headers)
  const reason = STATUS_CODES[status] ?? 'Error'
  return kindeError(status, reason.toUpperCase().replace(/\W+/g, '_'), reason, headers)
}

function requestedScopes(form: URLSearchParams): string[] {
  return (form.get('scope') ?? '').split(' ').filter((scope) => scope !== '')
}

function expands(url: URL, what: string): boolean {
  return (url.searchParams.get('expand') ?? '').split(',').map((part) => part.trim()).includes(what)
}

function isExpired(agreement: StoredAgreement): boolean {
  return agreement.expiresOn !== null && Date.parse(agreement.expiresOn) <= Date.now()
}

function agreementBody(a: StoredAgreement): unknown {
  return {
    id: a.id,
    plan_code: a.planCode,
    expires_on: a.expiresOn,
    billing_group_id: null,
    entitlements: a.features.map((feature) => ({ feature_code: feature, entitlement_id: `entitlement_${a.id}_${feature}` })),
  }
}

function parsePageSize(text: string | null, fallback: number): number | Reply {
  if (text === null) return fallback
  const size = /^\d+$/.test(text) ? Number(text) : 0
  if (size < 1) return kindeError(400, 'INVALID_REQUEST', 'page_size must be a positive integer')
  if (size > MAX_PAGE_SIZE) return kindeError(400, 'PAGE_SIZE_LIMIT_EXCEEDED', `Page size cannot be greater than ${MAX_PAGE_SIZE}`)
  return size
}

/** One page of `items` after or before the agreement id given as cursor. */
function paginate(
  items: StoredAgreement[], startingAfter: string | null, endingBefore: string | null, size: number,
): { items: StoredAgreement[]; hasMore: boolean } | Reply {
  if (startingAfter && endingBefore) {
    return kindeError(400, 'TOO_MANY_PARAMETERS', 'Only one of starting_after or ending_before may be specified')
  }
  const cursor = startingAfter || endingBefore
  if (!cursor) return { items: items.slice(0, size), hasMore: items.length > size }
  const at = items.findIndex((a) => a.id === cursor)
  if (at < 0) return kindeError(400, 'INVALID_REQUEST', `No agreement ${cursor} in this listing`)
  if (startingAfter) return { items: items.slice(at + 1, at + 1 + size), hasMore: items.length > at + 1 + size }
  const start = Math.max(0, at - size)
  return { items: items.slice(start, at), hasMore: start > 0 }
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

function asText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? ''
}

function usageKey(agreementId: string, feature: string): string {
  return `${agreementId}\u0000${feature}`
}

const PLAIN_DECIMAL = /^\d+(?:\.\d+)?$/
/** ISO 8601 date-time with a zone; Kinde's own example uses an hour-only offset (`+11`). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::\d{2})?)$/

function isDateTime(value: unknown): boolean {
  if (typeof value !== 'string' || !DATE_TIME.test(value)) return false
  // Date.parse rejects an hour-only offset, so complete it before checking the date is real.
  return !Number.isNaN(Date.parse(value.replace(/([+-]\d{2})$/, '$1:00')))
}

const isNonEmptyString = (value: unknown): boolean => typeof value === 'string' && value !== ''

/** Checks of a meter usage body, in the order Kinde's documentation lists the fields. */
const METER_USAGE_FIELDS: Array<{ name: string; rule: string; valid(value: unknown): boolean }> = [
  { name: 'customer_agreement_id', rule: 'is required and must be a non-empty string', valid: isNonEmptyString },
  { name: 'billing_feature_code', rule: 'is required and must be a non-empty string', valid: isNonEmptyString },
  {
    name: 'meter_value',
    rule: 'is required and must be a string holding a non-negative decimal such as "2.5"',
    valid: (value) => typeof value === 'string' && PLAIN_DECIMAL.test(value),
  },
  {
    name: 'meter_usage_timestamp',
    rule: 'must be an ISO 8601 date-time with a time zone',
    valid: (value) => value === undefined || isDateTime(value),
  },
  {
    name: 'meter_type_code',
    rule: 'must be "absolute" or "delta"',
    valid: (value) => value === undefined || value === 'absolute' || value === 'delta',
  },
]

/** A non-negative fixed-point decimal, `units / 10^scale`: exact for any input precision. */
interface Decimal {
  units: bigint
  scale: number
}

function parseDecimal(text: string): Decimal {
  const [whole, fraction = ''] = text.split('.')
  return { units: BigInt(whole + fraction), scale: fraction.length }
}

function addDecimals(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale)
  const units = a.units * 10n ** BigInt(scale - a.scale) + b.units * 10n ** BigInt(scale - b.scale)
  return { units, scale }
}

/** Plain decimal without trailing fractional zeros: `'1000'`, `'0.3'`. */
function formatDecimal({ units, scale }: Decimal): string {
  const digits = units.toString().padStart(scale + 1, '0')
  const whole = digits.slice(0, digits.length - scale)
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, '')
  return fraction === '' ? whole : `${whole}.${fraction}`
}

/** Fault rules, tried in order; probabilistic ones draw from a seeded PRNG. */
class FaultRules {
  #rules: Array<{ spec: FaultSpec; remaining: number }> = []
  readonly #random: () => number

  constructor(seed: number) {
    this.#random = mulberry32(seed)
  }

  add(spec: FaultSpec): void {
    const remaining = spec.times ?? (spec.probability === undefined ? 1 : Infinity)
    this.#rules.push({ spec: { ...spec }, remaining })
  }

  clear(): void {
    this.#rules = []
  }

  /** The fault that hits a request to `endpoint`, if any; counts the hit against the rule. */
  take(endpoint: Endpoint): FaultSpec | undefined {
    const rule = this.#rules.find((r) =>
      r.remaining > 0 && (r.spec.endpoint ?? 'meter_usage') === endpoint && this.#hits(r.spec))
    if (!rule) return undefined
    rule.remaining -= 1
    return rule.spec
  }

  #hits(spec: FaultSpec): boolean {
    return spec.probability === undefined || this.#random() < spec.probability
  }
}

/** Small, fast, seedable PRNG (Mulberry32) returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Token bucket holding up to one second's worth of requests, refilled continuously. */
class TokenBucket {
  readonly #rate: number
  readonly #capacity: number
  #tokens: number
  #last = performance.now()

  constructor(requestsPerSecond: number) {
    this.#rate = requestsPerSecond
    this.#capacity = Math.max(1, requestsPerSecond)
    this.#tokens = this.#capacity
  }

  /** Takes a token; when none is left, returns the whole seconds (at least 1) until one is. */
  take(): number | undefined {
    const now = performance.now()
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#last) / 1000) * this.#rate)
    this.#last = now
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return undefined
    }
    return Math.max(1, Math.ceil((1 - this.#tokens) / this.#rate))
  }
}
