/**
 * The M2M access tokens issued so far, and the bearer check of every `/api/*` route.
 *
 * Tokens carry Kinde's M2M claims; the check answers 401 for an unknown or expired token and 403
 * for one without the route's scope.
 * @module
 */
import { randomUUID } from 'node:crypto'
import { signJwt, type SigningKey } from './jwt.js'
import { kindeError, type Reply } from './reply.js'

/** The M2M application the token endpoint serves. */
export interface M2MApplication {
  clientId: string
  clientSecret: string
  /** `iss` of its tokens: the emulator's URL. */
  issuer: string
  /** The audience a token request must name: `${issuer}/api`. */
  audience: string
  /** Scopes granted; replaced by `setScopes`, which leaves tokens issued before alone. */
  scopes: string[]
  /** Lifetime of a token, reported as `expires_in`. */
  ttlSeconds: number
}

interface IssuedToken {
  /** Epoch milliseconds. */
  expiresAt: number
  scopes: Set<string>
}

/** Tokens issued so far, by their text. */
export class M2MTokens {
  readonly #issued = new Map<string, IssuedToken>()
  readonly #application: M2MApplication
  readonly #key: SigningKey

  /**
   * @param application - whose audience, client id, issuer and lifetime the tokens carry.
   * @param key - the key tokens are signed with.
   */
  constructor(application: M2MApplication, key: SigningKey) {
    this.#application = application
    this.#key = key
  }

  /**
   * Mints an RS256 token for the application, carrying Kinde's M2M claims.
   * @param scopes - scopes the token grants (`scp`).
   * @returns the token, valid for the application's `ttlSeconds` from now.
   */
  issue(scopes: string[]): string {
    const { audience, clientId, issuer, ttlSeconds } = this.#application
    const iat = Math.floor(Date.now() / 1000)
    const accessToken = signJwt({
      aud: [audience],
      azp: clientId,
      exp: iat + ttlSeconds,
      gty: ['client_credentials'],
      iat,
      iss: issuer,
      jti: randomUUID(),
      scp: scopes,
    }, this.#key)
    this.#issued.set(accessToken, { expiresAt: Date.now() + ttlSeconds * 1000, scopes: new Set(scopes) })
    return accessToken
  }

  /** Makes every token issued so far answer 401, as after expiry. */
  expireAll(): void {
    for (const token of this.#issued.values()) token.expiresAt = 0
  }

  /**
   * Checks a request's `Authorization` header.
   * @param authorization - the header as received, if any.
   * @param scope - the scope the route needs.
   * @returns undefined when the request may proceed; else Kinde's 401 or 403 answer.
   */
  authorize(authorization: string | undefined, scope: string): Reply | undefined {
    const bearer = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1]
    const token = bearer === undefined ? undefined : this.#issued.get(bearer)
    if (!token) return kindeError(401, 'UNAUTHORIZED', 'Missing or unknown bearer token')
    if (Date.now() >= token.expiresAt) return kindeError(401, 'UNAUTHORIZED', 'Bearer token expired')
    if (!token.scopes.has(scope)) return kindeError(403, 'FORBIDDEN', 'invalid credentials')
    return undefined
  }
}
