/**
 * `POST /oauth2/token`: the client-credentials grant, with OAuth2 error bodies for every refusal.
 * @module
 */
import type { M2MApplication, M2MTokens } from '../m2m-tokens.js'
import { oauthError, type Reply } from '../reply.js'
import type { Exchange, Route } from '../route.js'

/**
 * The token route.
 * @param application - the credentials, audience, granted scopes and lifetime it checks against.
 * @param tokens - where the tokens it issues are minted and remembered.
 */
export function tokenRoute(application: M2MApplication, tokens: M2MTokens): Route {
  return {
    endpoint: 'token',
    handle(exchange: Exchange): Reply {
      const contentType = exchange.req.headers['content-type'] ?? ''
      if (!/^application\/x-www-form-urlencoded\b/i.test(contentType)) {
        return oauthError(400, 'invalid_request', 'The body must be application/x-www-form-urlencoded')
      }
      const form = new URLSearchParams(exchange.body)
      return tokenRequestProblem(application, form) ?? issue(application, tokens, form)
    },
  }
}

function tokenRequestProblem(application: M2MApplication, form: URLSearchParams): Reply | undefined {
  const grantType = form.get('grant_type')
  if (!grantType) return oauthError(400, 'invalid_request', 'grant_type is required')
  if (grantType !== 'client_credentials') return oauthError(400, 'unsupported_grant_type', `Unsupported grant_type ${grantType}`)
  const clientId = form.get('client_id')
  const clientSecret = form.get('client_secret')
  if (!clientId || !clientSecret) return oauthError(400, 'invalid_request', 'client_id and client_secret are required')
  if (clientId !== application.clientId || clientSecret !== application.clientSecret) {
    return oauthError(401, 'invalid_client', 'Client authentication failed')
  }
  if (form.get('audience') !== application.audience) {
    return oauthError(400, 'invalid_request', `audience must be ${application.audience}`)
  }
  const ungranted = requestedScopes(form).filter((scope) => !application.scopes.includes(scope))
  if (ungranted.length > 0) return oauthError(400, 'invalid_scope', `Scopes not granted: ${ungranted.join(' ')}`)
  return undefined
}

function issue(application: M2MApplication, tokens: M2MTokens, form: URLSearchParams): Reply {
  const requested = requestedScopes(form)
  // An absent or empty scope asks for every scope granted.
  const scopes = requested.length > 0 ? requested : [...application.scopes]
  return {
    status: 200,
    body: { access_token: tokens.issue(scopes), expires_in: application.ttlSeconds, token_type: 'Bearer', scope: scopes.join(' ') },
    headers: { 'cache-control': 'no-store' },
  }
}

function requestedScopes(form: URLSearchParams): string[] {
  return (form.get('scope') ?? '').split(' ').filter((scope) => scope !== '')
}
