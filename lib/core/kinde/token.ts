// lib/core/kinde/: talking to Kinde's Management API: connections, tokens, calls, who pays to which agreement.
/**
 * The Management API access token: fetched with client credentials, cached until shortly before
 * it expires, fetched once however many sends wait for it (Kinde bills every M2M token), and
 * refreshed when Kinde refuses it. Or supplied by the user through `accessToken`.
 */
import { TokenError } from '../report/errors.js'
import { HttpFailure, type KindeHttp } from './http.js'
import type { MeteringConfig } from '../config/options.js'

/** Gives the bearer token for each call to Kinde. */
export class TokenProvider {
  readonly #config: MeteringConfig
  readonly #http: KindeHttp
  #token: string | undefined
  #refreshAt = 0
  #fetching: Promise<string> | undefined
  /** Tokens fetched from Kinde's token endpoint so far. */
  fetched = 0
  /** Scopes the last fetched token carries, as the token answer's `scope` lists them; `undefined` when it lists none. */
  scopes: string[] | undefined

  constructor (config: MeteringConfig, http: KindeHttp) {
    this.#config = config
    this.#http = http
  }

  /** The current token, fetching one when none is cached or it is about to expire. */
  async get (): Promise<string> {
    const source = this.#config.accessToken
    if (typeof source === 'string') return source
    if (typeof source === 'function') return await this.#fromUser(source)
    if (this.#token !== undefined && Date.now() < this.#refreshAt) return this.#token
    this.#fetching ??= this.#fetch().finally(() => { this.#fetching = undefined })
    return await this.#fetching
  }

  /**
   * Forgets `token` after Kinde refused it, so the next `get()` fetches a new one. A token other
   * than the cached one was already replaced: forgetting again would fetch twice.
   */
  invalidate (token: string): void {
    if (token === this.#token) this.#token = undefined
  }

  /** Asks the user's `accessToken` function; any failure is a token failure naming the option, never a network one. */
  async #fromUser (source: () => string | Promise<string>): Promise<string> {
    let token: unknown
    try {
      token = await source()
    } catch (error) {
      throw new TokenError(`option "accessToken": the function failed: ${String(error)}`, undefined, { cause: error, option: 'accessToken' })
    }
    if (typeof token !== 'string' || token.length === 0) {
      throw new TokenError(`option "accessToken": the function must give a non-empty string, gave ${typeof token}`, undefined, { option: 'accessToken' })
    }
    return token
  }

  async #fetch (): Promise<string> {
    const { clientId, clientSecret } = this.#config.credentials!
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret,
      audience: `${this.#config.origin}/api`
    })
    let answer
    try {
      answer = await this.#http.request('POST', '/oauth2/token', { 'content-type': 'application/x-www-form-urlencoded' }, form.toString())
    } catch (error) {
      throw new TokenError(`token request to ${this.#config.origin}/oauth2/token failed: ${(error as HttpFailure).message}`, undefined, { cause: error })
    }
    const body = answer.body as { access_token?: unknown, expires_in?: unknown, error?: unknown, error_description?: unknown, scope?: unknown }
    if (answer.status !== 200 || typeof body?.access_token !== 'string') {
      // Kinde's OAuth error fields describe the problem without echoing the secret.
      const oauthError = typeof body?.error === 'string' ? body.error : undefined
      const reason = oauthError !== undefined ? [body.error, body.error_description].filter(Boolean).join(': ') : 'no access_token in the answer'
      throw new TokenError(`token request was refused with HTTP ${answer.status} (${reason}); check clientId, clientSecret and that the M2M app is authorized for the Management API`, answer.status, { oauthError })
    }
    this.fetched++
    this.scopes = typeof body.scope === 'string' ? body.scope.split(' ').filter(Boolean) : undefined
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in * 1000 : 3_600_000
    // Refresh a little early (a tenth of the lifetime, at most a minute) so a send never carries a token that expires in flight.
    this.#refreshAt = Date.now() + lifetime - Math.min(60_000, lifetime / 10)
    this.#token = body.access_token
    return body.access_token
  }
}
