/**
 * `GET /.well-known/jwks.json` and `/.well-known/jwks`: the key every emulator token verifies with.
 * @module
 */
import type { SigningKey } from '../jwt.js'
import type { Route } from '../route.js'

/** The JWKS route, cacheable for an hour as a resource server would cache it. */
export function jwksRoute(key: SigningKey): Route {
  return {
    endpoint: 'jwks',
    handle: () => ({ status: 200, body: { keys: [key.jwk] }, headers: { 'cache-control': 'public, max-age=3600' } }),
  }
}
