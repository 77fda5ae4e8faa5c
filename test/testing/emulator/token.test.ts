/**
 * The M2M token endpoint (routes/token.ts) and the bearer check of the Management API
 * (m2m-tokens.ts).
 */
import t from 'tap'
import { AGREEMENT, FEATURE, billing, start, tokenForm, answer, requestToken, getToken, apiGet, sendUsage, delta } from '../../helpers/emulator.js'

t.test('M2M token endpoint', async (t) => {
  t.test('issues a bearer token with every granted scope for the right credentials', async (t) => {
    const kinde = await start(t)
    const { status, headers, body } = await requestToken(kinde)
    t.equal(status, 200)
    t.equal(headers.get('cache-control'), 'no-store')
    t.match(body, { token_type: 'Bearer', expires_in: 86400, access_token: String })
    t.same(body.scope.split(' '), ['create:meter_usage', 'read:users', 'read:organizations', 'read:billing_agreements'])
    t.equal(kinde.calls.token, 1)
  })

  t.test('accepts configured credentials, scopes and lifetime, and a narrower requested scope', async (t) => {
    const kinde = await start(t, { clientId: 'my-id', clientSecret: 'my-secret', scopes: ['read:users', 'create:meter_usage'], tokenTtlSeconds: 3600 })
    t.equal(kinde.clientId, 'my-id')
    t.equal(kinde.clientSecret, 'my-secret')
    const all = await requestToken(kinde)
    t.match(all.body, { expires_in: 3600, scope: 'read:users create:meter_usage' })
    const narrow = await requestToken(kinde, { scope: 'read:users' })
    t.equal(narrow.body.scope, 'read:users')
    t.equal((await sendUsage(kinde, narrow.body.access_token, delta('1'))).body.errors[0].code, 'FORBIDDEN')
  })

  t.test('rejects bad requests with OAuth2 error bodies', async (t) => {
    const kinde = await start(t)
    const cases: Array<[string, Record<string, string | undefined>, number, string]> = [
      ['missing grant_type', { grant_type: undefined }, 400, 'invalid_request'],
      ['other grant_type', { grant_type: 'password' }, 400, 'unsupported_grant_type'],
      ['missing client_id', { client_id: undefined }, 400, 'invalid_request'],
      ['missing client_secret', { client_secret: undefined }, 400, 'invalid_request'],
      ['wrong client_id', { client_id: 'someone-else' }, 401, 'invalid_client'],
      ['wrong client_secret', { client_secret: 'guess' }, 401, 'invalid_client'],
      ['missing audience', { audience: undefined }, 400, 'invalid_request'],
      ['audience of another domain', { audience: 'https://example.kinde.com/api' }, 400, 'invalid_request'],
      ['ungranted scope', { scope: 'read:users delete:users' }, 400, 'invalid_scope'],
    ]
    for (const [name, overrides, status, error] of cases) {
      const got = await requestToken(kinde, overrides)
      t.equal(got.status, status, name)
      t.match(got.body, { error, error_description: String }, name)
    }
  })

  t.test('requires a form-encoded body', async (t) => {
    const kinde = await start(t)
    const form = tokenForm(kinde)
    const asJson = await answer(await fetch(`${kinde.url}/oauth2/token`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(Object.fromEntries(new URLSearchParams(form))),
    }))
    t.match(asJson, { status: 400, body: { error: 'invalid_request' } })
    const untyped = await answer(await fetch(`${kinde.url}/oauth2/token`, { method: 'POST', body: new TextEncoder().encode(form) }))
    t.match(untyped, { status: 400, body: { error: 'invalid_request' } })
  })
})

t.test('bearer authentication on the Management API', async (t) => {
  t.test('answers 401 for a missing, malformed or unknown token', async (t) => {
    const kinde = await start(t)
    for (const authorization of [undefined, 'Basic abc', 'Bearer not-a-token']) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization }
      const got = await answer(await fetch(`${kinde.url}/api/v1/billing/agreements?customer_id=customer_a`, { headers }))
      t.equal(got.status, 401, String(authorization))
      t.match(got.body, { errors: [{ code: 'UNAUTHORIZED', message: String }] })
    }
  })

  t.test('answers 401 once a token expires, and a fresh token works', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    kinde.expireTokens()
    const expired = await sendUsage(kinde, token, delta('1'))
    t.match(expired, { status: 401, body: { errors: [{ code: 'UNAUTHORIZED' }] } })
    t.equal((await sendUsage(kinde, await getToken(kinde), delta('1'))).status, 200)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2')
  })

  t.test('a token past its expires_in gets 401', async (t) => {
    const kinde = await start(t, { ...billing, tokenTtlSeconds: 0 })
    const { body } = await requestToken(kinde)
    t.equal(body.expires_in, 0)
    t.equal((await sendUsage(kinde, body.access_token, delta('1'))).status, 401)
  })

  t.test('answers 403 "invalid credentials" when the token lacks the endpoint scope', async (t) => {
    const kinde = await start(t, { ...billing, users: [{ id: 'kp_1' }], organizations: [{ code: 'org_1' }] })
    const full = await getToken(kinde)
    kinde.setScopes(['read:users'])
    const limited = await getToken(kinde)
    const forbidden = { status: 403, body: { errors: [{ code: 'FORBIDDEN', message: 'invalid credentials' }] } }
    t.match(await sendUsage(kinde, limited, delta('1')), forbidden)
    t.match(await apiGet(kinde, limited, '/api/v1/organization?code=org_1'), forbidden)
    t.match(await apiGet(kinde, limited, '/api/v1/billing/agreements?customer_id=customer_a'), forbidden)
    t.equal((await apiGet(kinde, limited, '/api/v1/user?id=kp_1')).status, 200)
    t.equal((await sendUsage(kinde, full, delta('1'))).status, 200, 'tokens issued before keep their scopes')
  })
})
