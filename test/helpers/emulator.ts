/**
 * What the emulator tests share: a started emulator torn down with the test, the seeded billing
 * data, and clients for its endpoints that speak plain HTTP (fetch), as any Kinde client would.
 */
import { createPublicKey, verify, type JsonWebKey } from 'node:crypto'
import { startKindeEmulator, type EmulatorOptions, type KindeEmulator } from '../../lib/testing.js'

/** The part of a tap test that `start` needs. */
export interface Teardown {
  teardown(fn: () => unknown): void
}

/** An HTTP answer with its JSON body parsed (undefined when empty). */
export interface Answer {
  status: number
  headers: Headers
  body: any
}

export const AGREEMENT = 'agreement_a'
export const FEATURE = 'api_calls'

/** A customer with a current agreement (two features) and an expired one. */
export const billing: EmulatorOptions = {
  agreements: [
    { id: AGREEMENT, customerId: 'customer_a', planCode: 'pro', features: [FEATURE, 'storage_gb'] },
    { id: 'agreement_old', customerId: 'customer_a', planCode: 'starter', expiresOn: '2020-01-01T00:00:00Z', features: [FEATURE] },
  ],
}

/** Starts an emulator that closes when the test ends. */
export async function start(t: Teardown, options: EmulatorOptions = billing): Promise<KindeEmulator> {
  const kinde = await startKindeEmulator(options)
  t.teardown(() => kinde.close())
  return kinde
}

/** The form of a valid token request, with fields replaced or (undefined) removed. */
export function tokenForm(kinde: KindeEmulator, overrides: Record<string, string | undefined> = {}): string {
  const fields: Record<string, string | undefined> = {
    grant_type: 'client_credentials',
    client_id: kinde.clientId,
    client_secret: kinde.clientSecret,
    audience: `${kinde.url}/api`,
    ...overrides,
  }
  const form = new URLSearchParams()
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) form.set(name, value)
  return form.toString()
}

/** Reads a fetch response as an {@link Answer}. */
export async function answer(response: Response): Promise<Answer> {
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
}

/** Asks the token endpoint for a token. */
export async function requestToken(kinde: KindeEmulator, overrides: Record<string, string | undefined> = {}): Promise<Answer> {
  return answer(await fetch(`${kinde.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: tokenForm(kinde, overrides),
  }))
}

/** A valid M2M access token. */
export async function getToken(kinde: KindeEmulator, overrides: Record<string, string | undefined> = {}): Promise<string> {
  const { status, body } = await requestToken(kinde, overrides)
  if (status !== 200) throw new Error(`token request failed: ${JSON.stringify(body)}`)
  return body.access_token
}

/** A Management API GET, with the bearer token when one is given. */
export async function apiGet(kinde: KindeEmulator, token: string | undefined, path: string): Promise<Answer> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
  return answer(await fetch(`${kinde.url}${path}`, { headers }))
}

/** Posts a meter usage body (an object as JSON, a string as it is). */
export async function sendUsage(
  kinde: KindeEmulator, token: string, record: unknown, init: { signal?: AbortSignal } = {},
): Promise<Answer> {
  return answer(await fetch(`${kinde.url}/api/v1/billing/meter_usage`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: typeof record === 'string' ? record : JSON.stringify(record),
    signal: init.signal,
  }))
}

/** A delta record against the seeded agreement. */
export function delta(meterValue: string, feature = FEATURE): Record<string, string> {
  return { customer_agreement_id: AGREEMENT, billing_feature_code: feature, meter_value: meterValue, meter_type_code: 'delta' }
}

/**
 * Waits for the emulator to reach a state, checking between I/O events; rejects after `timeoutMs`
 * so a state that never comes fails the test that waits for it instead of hanging the run.
 */
export async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`the emulator did not reach the state awaited within ${timeoutMs} ms`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function decodePart(part: string): any {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
}

/** Verifies an RS256 JWT against a JWKS the way a resource server would, returning its claims. */
export function verifyJwt(token: string, jwks: { keys: Array<JsonWebKey & { kid: string }> }): any {
  const [header, payload, signature] = token.split('.')
  const { alg, kid } = decodePart(header)
  const jwk = jwks.keys.find((key) => key.kid === kid)
  if (alg !== 'RS256' || jwk === undefined) return undefined
  const key = createPublicKey({ key: jwk, format: 'jwk' })
  const valid = verify('sha256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'))
  return valid ? decodePart(payload) : undefined
}
