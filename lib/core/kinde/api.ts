// lib/core/kinde/: talking to Kinde's Management API: connections, tokens, calls, who pays to which agreement.
/**
 * The calls this package makes to Kinde's Management API, with the bearer token attached,
 * refreshed once on 401/403, and each meter usage send classified for delivery.
 */
import { KindeApiError, KindeNetworkError, TokenError } from '../report/errors.js'
import { HttpFailure, type HttpAnswer, type KindeHttp } from './http.js'
import type { TokenProvider } from './token.js'

/** The body of `POST /api/v1/billing/meter_usage`. */
export interface MeterUsageRecord {
  customer_agreement_id: string
  billing_feature_code: string
  meter_value: string
  meter_usage_timestamp: string
  /** `delta` adds to the period's usage (`record()`); `absolute` replaces it (`set()`). */
  meter_type_code: 'delta' | 'absolute'
}

/**
 * How a send ended, as delivery must treat it:
 * - `ok`: applied;
 * - `not_applied`: certainly not applied (429, 502, 503, 404, refused, failed before written): retry;
 * - `rejected`: Kinde refused the record itself (400 and other 4xx): never retry;
 * - `unauthorized`: the token was refused even after a refresh, or none could be had: keep pending;
 * - `ambiguous`: may have been applied (500, 504, reset or timeout after written).
 */
export type SendOutcome = { kind: 'ok' } | SendFailure

/** A send that failed, with what Kinde said. */
export interface SendFailure {
  kind: 'not_applied' | 'rejected' | 'unauthorized' | 'ambiguous'
  /** HTTP status of Kinde's answer, when there was one. */
  status?: number
  /** Kinde's error body, when there was one. */
  body?: unknown
  message: string
  /** Milliseconds Kinde asked every send to wait (`RateLimit-Reset`, `Retry-After`). */
  waitMs?: number
  /** True when the token endpoint refused the credentials: the record was never sent. */
  tokenRefused?: boolean
  /** The option (`accessToken`) whose function threw, rejected or gave no token: the record was never sent. */
  tokenOption?: string
  /** The error thrown, when the send failed without an answer (no token, no connection): logged with its stack. */
  error?: Error
}

/** An agreement as `GET /api/v1/billing/agreements` lists it. */
export interface Agreement {
  id: string
  plan_code?: string
  expires_on?: string | null
  entitlements?: Array<{ feature_code?: string }>
}

/** A user or organization look-up: whether Kinde knows it, and its billing customer id if it is one. */
export interface BillingLookup {
  found: boolean
  customerId: string | null
}

/** Management API calls over one pool and one token. */
export class KindeApi {
  readonly #http: KindeHttp
  readonly #tokens: TokenProvider

  constructor (http: KindeHttp, tokens: TokenProvider) {
    this.#http = http
    this.#tokens = tokens
  }

  /** Sends one meter usage record and classifies the result. Never throws. */
  async sendMeterUsage (record: MeterUsageRecord): Promise<SendOutcome> {
    let answer: HttpAnswer
    try {
      answer = await this.#authorized('POST', '/api/v1/billing/meter_usage', JSON.stringify(record))
    } catch (error) {
      return classifyFailure(error)
    }
    return classifyAnswer(answer)
  }

  /** A user's billing customer id; `null` when Kinde knows no such user or it has none. */
  async userCustomerId (userId: string): Promise<string | null> {
    return (await this.userBilling(userId)).customerId
  }

  /** An organization's billing customer id; `null` when Kinde knows no such organization or it has none. */
  async orgCustomerId (orgCode: string): Promise<string | null> {
    return (await this.orgBilling(orgCode)).customerId
  }

  /** Whether Kinde knows the user, and its billing customer id: `doctor` says which of the two is missing. */
  async userBilling (userId: string): Promise<BillingLookup> {
    const body = await this.#lookUp('user look-up', `/api/v1/user?id=${encodeURIComponent(userId)}&expand=billing`)
    return { found: body !== null, customerId: stringOrNull((body as { billing?: { customer_id?: unknown } } | null)?.billing?.customer_id) }
  }

  /** Whether Kinde knows the organization, and its billing customer id (`billing_customer_id`, not `customer_id`). */
  async orgBilling (orgCode: string): Promise<BillingLookup> {
    const body = await this.#lookUp('organization look-up', `/api/v1/organization?code=${encodeURIComponent(orgCode)}&expand=billing`)
    return { found: body !== null, customerId: stringOrNull((body as { billing?: { billing_customer_id?: unknown } } | null)?.billing?.billing_customer_id) }
  }

  /** Every agreement of a customer that includes `feature` (every one without it), following pagination. */
  async agreements (customerId: string, feature?: string): Promise<Agreement[]> {
    const all: Agreement[] = []
    let after: string | undefined
    do {
      const query = new URLSearchParams({ customer_id: customerId, ...(feature === undefined ? {} : { feature_code: feature }), page_size: '100' })
      if (after !== undefined) query.set('starting_after', after)
      const body = await this.#lookUp('agreements look-up', `/api/v1/billing/agreements?${query.toString()}`) as
        { agreements?: Agreement[], has_more?: boolean } | null
      const page = body?.agreements ?? []
      all.push(...page)
      after = body?.has_more === true && page.length > 0 ? page[page.length - 1].id : undefined
    } while (after !== undefined)
    return all
  }

  /** GET a look-up; `null` when Kinde answers that the thing does not exist (400 or 404). */
  async #lookUp (what: string, path: string): Promise<unknown> {
    let answer: HttpAnswer
    try {
      answer = await this.#authorized('GET', path)
    } catch (error) {
      if (error instanceof TokenError) throw error
      throw new KindeNetworkError(what, error as Error)
    }
    if (answer.status === 200) return answer.body
    // An unknown id is undocumented; Kinde declares 400 for these paths.
    if (answer.status === 400 || answer.status === 404) return null
    throw new KindeApiError(what, answer.status, answer.body)
  }

  /** One call with the bearer token; on 401/403 the token is refreshed and the call made once more. */
  async #authorized (method: 'GET' | 'POST', path: string, body?: string): Promise<HttpAnswer> {
    let answer: HttpAnswer | undefined
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = await this.#tokens.get()
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' }
      if (body !== undefined) headers['content-type'] = 'application/json'
      answer = await this.#http.request(method, path, headers, body)
      if (answer.status !== 401 && answer.status !== 403) return answer
      this.#tokens.invalidate(token)
    }
    return answer!
  }
}

function classifyAnswer ({ status, headers, body }: HttpAnswer): SendOutcome {
  if (status >= 200 && status < 300) return { kind: 'ok' }
  const message = `meter usage send answered HTTP ${status}`
  if (status === 429) return { kind: 'not_applied', status, body, message, waitMs: waitFrom(headers) }
  if (status === 401 || status === 403) return { kind: 'unauthorized', status, body, message }
  // 404 means the domain serves no Management API (a custom domain?): nothing was applied.
  if (status === 404 || status === 502 || status === 503) return { kind: 'not_applied', status, body, message, waitMs: waitFrom(headers) }
  if (status >= 400 && status < 500) return { kind: 'rejected', status, body, message }
  return { kind: 'ambiguous', status, body, message }
}

function classifyFailure (error: unknown): SendOutcome {
  if (error instanceof TokenError) {
    // The user's own token source failed: nothing reached Kinde, and only the user can fix it.
    if (error.option !== undefined) return { kind: 'unauthorized', message: error.message, tokenOption: error.option, error }
    const refused = error.status !== undefined && error.status < 500
    return { kind: refused ? 'unauthorized' : 'not_applied', status: error.status, message: error.message, tokenRefused: refused, error }
  }
  const failure = error as HttpFailure
  const message = `meter usage send failed: ${failure.message} (${String(failure.errorCode)})`
  return { kind: failure.written ? 'ambiguous' : 'not_applied', message, error: failure }
}

/** Milliseconds Kinde asked us to wait: `RateLimit-Reset` (seconds), else `Retry-After` (seconds or a date). */
function waitFrom (headers: Record<string, string>): number | undefined {
  // An absent header reads as NaN, which is neither finite nor a date: it asks for no wait.
  const reset = secondsIn(headers['ratelimit-reset'])
  if (Number.isFinite(reset) && reset >= 0) return reset * 1000
  const retryAfter = headers['retry-after']
  const delay = secondsIn(retryAfter)
  if (Number.isFinite(delay)) return Math.max(0, delay * 1000)
  const date = Date.parse(retryAfter)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

/**
 * A header's count of seconds; NaN when it has none (absent reads as NaN already; `Number` would
 * read an empty one as 0, no wait). Node's parser strips the spaces around a value: a blank one is ''.
 */
function secondsIn (header: string | undefined): number {
  return header === '' ? Number.NaN : Number(header)
}

function stringOrNull (value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null
}
