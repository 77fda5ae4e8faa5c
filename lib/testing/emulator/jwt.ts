/**
 * RS256 signing for the Kinde emulator: one RSA key pair, its public JWK, and compact JWTs.
 * @module
 */
import { createHash, generateKeyPair, sign, type JsonWebKey, type KeyObject } from 'node:crypto'
import { promisify } from 'node:util'

/** An RSA private key and the public JWK that verifies what it signs. */
export interface SigningKey {
  /** RSA private key used for RS256 signatures. */
  privateKey: KeyObject
  /** Public key as served in a JWKS: `kty`, `n`, `e`, plus `kid`, `alg: 'RS256'`, `use: 'sig'`. */
  jwk: JsonWebKey & { kid: string; alg: 'RS256'; use: 'sig' }
}

let shared: Promise<SigningKey> | undefined

/**
 * The process-wide signing key, generated (RSA 2048) on first use.
 * Shared by every emulator because generating a key takes ~100 ms and tests start many emulators;
 * tokens still differ per emulator through their `iss`.
 */
export function sharedSigningKey(): Promise<SigningKey> {
  shared ??= createSigningKey()
  return shared
}

async function createSigningKey(): Promise<SigningKey> {
  const { publicKey, privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 })
  const { kty, n, e } = publicKey.export({ format: 'jwk' })
  // RFC 7638 thumbprint: a stable key id derived from the key itself.
  const kid = createHash('sha256').update(JSON.stringify({ e, kty, n })).digest('base64url')
  return { privateKey, jwk: { kty, n, e, kid, alg: 'RS256', use: 'sig' } }
}

/**
 * Signs `payload` as a compact RS256 JWT whose header names the key's `kid`.
 * @param payload - JWT claims, serialised as given (times in epoch seconds are the caller's job).
 * @param key - the key to sign with.
 * @returns `header.payload.signature`, each part base64url-encoded.
 */
export function signJwt(payload: Record<string, unknown>, key: SigningKey): string {
  const header = { alg: 'RS256', typ: 'JWT', kid: key.jwk.kid }
  const signingInput = `${encodeJson(header)}.${encodeJson(payload)}`
  const signature = sign('sha256', Buffer.from(signingInput), key.privateKey)
  return `${signingInput}.${signature.toString('base64url')}`
}

function encodeJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}
