/**
 * What the emulator answers, and the error bodies Kinde documents.
 *
 * The Management API answers an `errors` array (an `errors` object on an unknown route); the
 * OAuth2 token endpoint answers `error` and `error_description`.
 * @module
 */

/** An answer on its way to the client: status, JSON body, extra headers. */
export interface Reply {
  status: number
  body: unknown
  headers?: Record<string, string>
}

/** A 200 answer with `body`. */
export function ok(body: unknown): Reply {
  return { status: 200, body }
}

/** Kinde's error body: `{ errors: [{ code, message }] }`. */
export function kindeError(status: number, code: string, message: string, headers?: Record<string, string>): Reply {
  return { status, body: { errors: [{ code, message }] }, headers }
}

/** Kinde's 429 from its rate limiter, with the seconds until the limit resets. */
export function throttled(resetSeconds: number, headers: Record<string, string> = {}): Reply {
  return kindeError(429, 'THROTTLED', 'Request was throttled.', { ...headers, 'ratelimit-reset': String(resetSeconds) })
}

/** OAuth2 error body of the token endpoint. */
export function oauthError(status: number, error: string, description: string): Reply {
  return { status, body: { error, error_description: description }, headers: { 'cache-control': 'no-store' } }
}

/** Kinde's unknown-route answer, whose `errors` is an object, not an array. */
export function notFound(): Reply {
  return { status: 404, body: { errors: { code: 'ROUTE_NOT_FOUND', message: 'The requested API route does not exist' } } }
}
