import t from 'tap'
import { createPublicKey, verify, type JsonWebKey } from 'node:crypto'
import { once } from 'node:events'
import { Agent, get } from 'node:http'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent as UndiciAgent, request } from 'undici'
import {
  EMULATOR_USER_AUDIENCE,
  startKindeEmulator,
  type EmulatorOptions,
  type KindeEmulator,
} from '../lib/testing.js'

interface Teardown {
  teardown(fn: () => unknown): void
}

interface Answer {
  status: number
  headers: Headers
  body: any
}

const AGREEMENT = 'agreement_a'
const FEATURE = 'api_calls'

const billing: EmulatorOptions = {
  agreements: [
    { id: AGREEMENT, customerId: 'customer_a', planCode: 'pro', features: [FEATURE, 'storage_gb'] },
    { id: 'agreement_old', customerId: 'customer_a', planCode: 'starter', expiresOn: '2020-01-01T00:00:00Z', features: [FEATURE] },
  ],
}

async function start(t: Teardown, options: EmulatorOptions = billing): Promise<KindeEmulator> {
  const kinde = await startKindeEmulator(options)
  t.teardown(() => kinde.close())
  return kinde
}

function tokenForm(kinde: KindeEmulator, overrides: Record<string, string | undefined> = {}): string {
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

async function answer(response: Response): Promise<Answer> {
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) }
}

async function requestToken(kinde: KindeEmulator, overrides: Record<string, string | undefined> = {}): Promise<Answer> {
  return answer(await fetch(`${kinde.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: tokenForm(kinde, overrides),
  }))
}

async function getToken(kinde: KindeEmulator, overrides: Record<string, string | undefined> = {}): Promise<string> {
  const { status, body } = await requestToken(kinde, overrides)
  if (status !== 200) throw new Error(`token request failed: ${JSON.stringify(body)}`)
  return body.access_token
}

async function apiGet(kinde: KindeEmulator, token: string | undefined, path: string): Promise<Answer> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
  return answer(await fetch(`${kinde.url}${path}`, { headers }))
}

async function sendUsage(
  kinde: KindeEmulator, token: string, record: unknown, init: { signal?: AbortSignal } = {},
): Promise<Answer> {
  return answer(await fetch(`${kinde.url}/api/v1/billing/meter_usage`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: typeof record === 'string' ? record : JSON.stringify(record),
    signal: init.signal,
  }))
}

function delta(meterValue: string, feature = FEATURE): Record<string, string> {
  return { customer_agreement_id: AGREEMENT, billing_feature_code: feature, meter_value: meterValue, meter_type_code: 'delta' }
}

/** Waits for the emulator to reach a state, checking between I/O events. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve))
}

function decodePart(part: string): any {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
}

/** Verifies an RS256 JWT against a JWKS the way a resource server would, returning its claims. */
function verifyJwt(token: string, jwks: { keys: Array<JsonWebKey & { kid: string }> }): any {
  const [header, payload, signature] = token.split('.')
  const { alg, kid } = decodePart(header)
  const jwk = jwks.keys.find((key) => key.kid === kid)
  if (alg !== 'RS256' || jwk === undefined) return undefined
  const key = createPublicKey({ key: jwk, format: 'jwk' })
  const valid = verify('sha256', Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, 'base64url'))
  return valid ? decodePart(payload) : undefined
}

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

t.test('meter usage', async (t) => {
  t.test('sums decimal deltas exactly', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    const ok = await sendUsage(kinde, token, delta('0.1', 'storage_gb'))
    t.same(ok, { status: 200, headers: ok.headers, body: { message: 'Success', code: 'OK' } })
    await sendUsage(kinde, token, delta('0.2', 'storage_gb'))
    t.equal(kinde.usage(AGREEMENT, 'storage_gb'), '0.3')
    await sendUsage(kinde, token, delta('0.000000000000000000001', 'storage_gb'))
    t.equal(kinde.usage(AGREEMENT, 'storage_gb'), '0.300000000000000000001')
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0', 'other features are untouched')
    t.equal(kinde.usage('agreement_unknown', FEATURE), '0')
  })

  t.test('300 deltas of "0.1" make exactly "30", where floating point drifts', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    // undici's request() rather than fetch(): four times faster, which keeps this volume quick.
    const agent = new UndiciAgent({ connections: 16 })
    t.teardown(() => agent.close())
    const body = JSON.stringify(delta('0.1'))
    const send = async (): Promise<number> => {
      const { statusCode, body: answerBody } = await request(`${kinde.url}/api/v1/billing/meter_usage`, {
        method: 'POST', dispatcher: agent, body,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      })
      await answerBody.dump()
      return statusCode
    }
    const statuses: number[] = []
    const lanes = Array.from({ length: 16 }, async (_, lane) => {
      for (let i = lane; i < 300; i += 16) statuses.push(await send())
    })
    await Promise.all(lanes)
    t.same(new Set(statuses), new Set([200]))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '30')
    t.not(Array.from({ length: 300 }).reduce((sum: number) => sum + 0.1, 0), 30, 'a float sum would be off')
    t.equal(kinde.records.length, 300)
  })

  t.test('an absolute value replaces the sum, later deltas add to it, and a missing type adds', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    await sendUsage(kinde, token, delta('5'))
    await sendUsage(kinde, token, { ...delta('2'), meter_type_code: 'absolute' })
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2')
    await sendUsage(kinde, token, delta('0.50'))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2.5')
    const { meter_type_code: _, ...untyped } = delta('007')
    await sendUsage(kinde, token, untyped)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '9.5')
    await sendUsage(kinde, token, { ...delta('0.000'), meter_type_code: 'absolute' })
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
  })

  t.test('accepts ISO 8601 timestamps, including Kinde\'s hour-only offset', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    for (const timestamp of ['2024-11-18T13:32:03+11', '2024-11-18T02:32:03.123Z', '2024-11-18T13:32+11:00']) {
      t.equal((await sendUsage(kinde, token, { ...delta('1'), meter_usage_timestamp: timestamp })).status, 200, timestamp)
    }
    t.equal(kinde.usage(AGREEMENT, FEATURE), '3')
  })

  t.test('rejects invalid records with 400 naming the problem, applying nothing', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    const cases: Array<[unknown, string, string]> = [
      ['{"customer_agreement_id": ', 'INVALID_REQUEST', 'JSON object'],
      ['null', 'INVALID_REQUEST', 'JSON object'],
      ['[1]', 'INVALID_REQUEST', 'JSON object'],
      ['5', 'INVALID_REQUEST', 'JSON object'],
      [{}, 'INVALID_REQUEST', 'customer_agreement_id'],
      [{ ...delta('1'), customer_agreement_id: 42 }, 'INVALID_REQUEST', 'customer_agreement_id'],
      [{ ...delta('1'), billing_feature_code: undefined }, 'INVALID_REQUEST', 'billing_feature_code'],
      [{ ...delta('1'), meter_value: 1 }, 'INVALID_REQUEST', 'meter_value'],
      ...['1e-7', '', '-1', '1.', '.5', ' 1', '0x10'].map((value): [unknown, string, string] =>
        [delta(value), 'INVALID_REQUEST', 'meter_value']),
      ...['yesterday', '2024-13-45T00:00:00Z', '2024-11-18T13:32:03', 1731900000].map((timestamp): [unknown, string, string] =>
        [{ ...delta('1'), meter_usage_timestamp: timestamp }, 'INVALID_REQUEST', 'meter_usage_timestamp']),
      [{ ...delta('1'), meter_type_code: 'total' }, 'INVALID_REQUEST', 'meter_type_code'],
      [{ ...delta('1'), customer_agreement_id: 'agreement_unknown' }, 'AGREEMENT_NOT_FOUND', 'agreement_unknown'],
      [{ ...delta('1'), customer_agreement_id: 'agreement_old' }, 'AGREEMENT_EXPIRED', 'agreement_old'],
      [delta('1', 'not_in_plan'), 'FEATURE_NOT_FOUND', 'not_in_plan'],
    ]
    for (const [record, code, mentions] of cases) {
      const got = await sendUsage(kinde, token, record)
      t.equal(got.status, 400, JSON.stringify(record))
      t.equal(got.body.errors[0].code, code, JSON.stringify(record))
      t.match(got.body.errors[0].message, mentions, JSON.stringify(record))
    }
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
    t.equal(kinde.records.length, cases.length - 4, 'bodies that are not JSON objects are not records')
    t.ok(kinde.records.every((r) => !r.applied && r.status === 400))
  })

  t.test('records every request as received, in order, with its outcome', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    await sendUsage(kinde, token, { ...delta('1.5'), meter_usage_timestamp: '2024-11-18T02:32:03Z' })
    await sendUsage(kinde, token, { customer_agreement_id: AGREEMENT, meter_value: 2 })
    t.same(kinde.records, [
      { customer_agreement_id: AGREEMENT, billing_feature_code: FEATURE, meter_value: '1.5', meter_usage_timestamp: '2024-11-18T02:32:03Z', meter_type_code: 'delta', applied: true, status: 200 },
      { customer_agreement_id: AGREEMENT, billing_feature_code: '', meter_value: '2', applied: false, status: 400 },
    ])
    t.equal(kinde.calls.meter_usage, 2)
  })

  t.test('ignores a request whose client disconnects before sending the whole body', async (t) => {
    const kinde = await start(t)
    const socket = connect(Number(new URL(kinde.url).port), '127.0.0.1')
    socket.write('POST /api/v1/billing/meter_usage HTTP/1.1\r\nHost: kinde\r\nContent-Type: application/json\r\n' +
      'Content-Length: 500\r\nExpect: 100-continue\r\n\r\n')
    await once(socket, 'data') // "100 Continue": the emulator has taken the request
    socket.write('{"customer_agreement_id":')
    socket.destroy()
    await kinde.close()
    t.equal(kinde.calls.meter_usage, 1)
    t.same(kinde.records, [])
  })
})

t.test('look-ups from user and organization to agreements', async (t) => {
  const data: EmulatorOptions = {
    users: [{ id: 'kp_payer', customerId: 'customer_a' }, { id: 'kp_free' }],
    organizations: [{ code: 'org_payer', customerId: 'customer_a' }, { code: 'org_free' }, { code: 'org_new', customerId: 'customer_new' }],
    agreements: billing.agreements,
  }

  t.test('user by id, with billing.customer_id when expanded', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    const expanded = await apiGet(kinde, token, '/api/v1/user?id=kp_payer&expand=organizations,%20billing')
    t.match(expanded, { status: 200, body: { id: 'kp_payer', is_suspended: false, billing: { customer_id: 'customer_a' } } })
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/user?id=kp_payer')).body, 'no billing unless asked')
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/user?id=kp_free&expand=billing')).body, 'no billing for a non-customer')
    t.match(await apiGet(kinde, token, '/api/v1/user?id=kp_nobody'), { status: 400, body: { errors: [{ code: 'USER_NOT_FOUND' }] } })
    t.match(await apiGet(kinde, token, '/api/v1/user'), { status: 400, body: { errors: [{ code: 'INVALID_REQUEST', message: /id/ }] } })
    t.equal(kinde.calls.user, 5)
  })

  t.test('organization by code, with billing_customer_id and current agreements when expanded', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    const expanded = await apiGet(kinde, token, '/api/v1/organization?code=org_payer&expand=billing')
    t.match(expanded, { status: 200, body: { code: 'org_payer', is_suspended: false } })
    t.same(expanded.body.billing, { billing_customer_id: 'customer_a', agreements: [{ plan_code: 'pro', agreement_id: AGREEMENT }] },
      'the expired agreement is not current')
    t.same((await apiGet(kinde, token, '/api/v1/organization?code=org_new&expand=billing')).body.billing,
      { billing_customer_id: 'customer_new', agreements: [] })
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/organization?code=org_payer')).body)
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/organization?code=org_free&expand=billing')).body)
    t.match(await apiGet(kinde, token, '/api/v1/organization?code=org_nobody'), { status: 400, body: { errors: [{ code: 'ORGANIZATION_NOT_FOUND' }] } })
    t.match(await apiGet(kinde, token, '/api/v1/organization'), { status: 400, body: { errors: [{ code: 'INVALID_REQUEST', message: /code/ }] } })
  })

  t.test('agreements of a customer, expired ones included, in Kinde\'s shape', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    const listed = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_a')
    t.same(listed.body, {
      code: 'OK',
      message: 'Success',
      has_more: false,
      agreements: [
        {
          id: AGREEMENT, plan_code: 'pro', expires_on: null, billing_group_id: null,
          entitlements: [
            { feature_code: FEATURE, entitlement_id: `entitlement_${AGREEMENT}_${FEATURE}` },
            { feature_code: 'storage_gb', entitlement_id: `entitlement_${AGREEMENT}_storage_gb` },
          ],
        },
        {
          id: 'agreement_old', plan_code: 'starter', expires_on: '2020-01-01T00:00:00Z', billing_group_id: null,
          entitlements: [{ feature_code: FEATURE, entitlement_id: `entitlement_agreement_old_${FEATURE}` }],
        },
      ],
    })
    const byFeature = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_a&feature_code=storage_gb')
    t.same(byFeature.body.agreements.map((a: { id: string }) => a.id), [AGREEMENT])
  })

  t.test('agreement listings know customers from users, organizations and agreements alone', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    kinde.addUser({ id: 'kp_late', customerId: 'customer_user_only' })
    kinde.addAgreement({ id: 'agreement_z', customerId: 'customer_agreement_only', features: ['seats'] })
    for (const customer of ['customer_user_only', 'customer_new']) {
      t.match(await apiGet(kinde, token, `/api/v1/billing/agreements?customer_id=${customer}`),
        { status: 200, body: { has_more: false, agreements: [] } }, customer)
    }
    const added = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_agreement_only')
    t.match(added.body.agreements, [{ id: 'agreement_z', plan_code: 'emulator_plan', expires_on: null }], 'default plan code')
    t.match(await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_nobody'),
      { status: 400, body: { errors: [{ code: 'CUSTOMER_NOT_FOUND' }] } })
    t.match(await apiGet(kinde, token, '/api/v1/billing/agreements'),
      { status: 400, body: { errors: [{ code: 'INVALID_REQUEST', message: /customer_id/ }] } })
  })

  t.test('data added at run time replaces entries with the same id in place', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    kinde.addAgreement({ id: AGREEMENT, customerId: 'customer_a', planCode: 'enterprise', features: ['seats'] })
    kinde.addOrganization({ code: 'org_free', customerId: 'customer_a' })
    const listed = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_a')
    t.same(listed.body.agreements.map((a: { id: string; plan_code: string }) => [a.id, a.plan_code]),
      [[AGREEMENT, 'enterprise'], ['agreement_old', 'starter']])
    const organization = await apiGet(kinde, token, '/api/v1/organization?code=org_free&expand=billing')
    t.equal(organization.body.billing.billing_customer_id, 'customer_a')
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 400, `${FEATURE} is no longer an entitlement`)
  })
})

t.test('agreement pagination', async (t) => {
  const agreements = ['p1', 'p2', 'p3', 'p4', 'p5'].map((id, i) =>
    ({ id, customerId: 'customer_p', features: i % 2 === 1 ? ['x', 'y'] : ['y'] }))
  const ids = (got: Answer): string[] => got.body.agreements.map((a: { id: string }) => a.id)

  t.test('pages forwards with starting_after and backwards with ending_before', async (t) => {
    const kinde = await start(t, { agreements, pageSize: 2 })
    const token = await getToken(kinde)
    const list = (query: string): Promise<Answer> => apiGet(kinde, token, `/api/v1/billing/agreements?customer_id=customer_p${query}`)
    const first = await list('')
    t.same([ids(first), first.body.has_more], [['p1', 'p2'], true], 'default page size from options')
    const second = await list('&starting_after=p2')
    t.same([ids(second), second.body.has_more], [['p3', 'p4'], true])
    const last = await list('&starting_after=p4')
    t.same([ids(last), last.body.has_more], [['p5'], false])
    const big = await list('&page_size=3&starting_after=p1')
    t.same([ids(big), big.body.has_more], [['p2', 'p3', 'p4'], true])
    const before = await list('&ending_before=p5&page_size=2')
    t.same([ids(before), before.body.has_more], [['p3', 'p4'], true])
    const fromStart = await list('&ending_before=p3&page_size=5')
    t.same([ids(fromStart), fromStart.body.has_more], [['p1', 'p2'], false])
    const filtered = await list('&feature_code=x&page_size=1&starting_after=p2')
    t.same([ids(filtered), filtered.body.has_more], [['p4'], false], 'the cursor runs over the filtered list')
  })

  t.test('Kinde\'s default page size is 10', async (t) => {
    const many = Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, customerId: 'customer_m', features: ['y'] }))
    const kinde = await start(t, { agreements: many })
    const page = await apiGet(kinde, await getToken(kinde), '/api/v1/billing/agreements?customer_id=customer_m')
    t.equal(page.body.agreements.length, 10)
    t.equal(page.body.has_more, true)
  })

  t.test('rejects bad paging parameters', async (t) => {
    const kinde = await start(t, { agreements })
    const token = await getToken(kinde)
    const cases: Array<[string, string]> = [
      ['&page_size=0', 'INVALID_REQUEST'],
      ['&page_size=ten', 'INVALID_REQUEST'],
      ['&page_size=101', 'PAGE_SIZE_LIMIT_EXCEEDED'],
      ['&starting_after=p1&ending_before=p3', 'TOO_MANY_PARAMETERS'],
      ['&starting_after=agreement_elsewhere', 'INVALID_REQUEST'],
      ['&feature_code=x&starting_after=p1', 'INVALID_REQUEST'],
    ]
    for (const [query, code] of cases) {
      const got = await apiGet(kinde, token, `/api/v1/billing/agreements?customer_id=customer_p${query}`)
      t.match(got, { status: 400, body: { errors: [{ code }] } }, query)
    }
  })
})

t.test('unknown routes answer 404 with an errors object', async (t) => {
  const kinde = await start(t)
  const token = await getToken(kinde)
  const notFound = { status: 404, body: { errors: { code: 'ROUTE_NOT_FOUND', message: String } } }
  t.match(await apiGet(kinde, token, '/api/v1/billing/usage'), notFound)
  t.match(await apiGet(kinde, token, '/api/v1/billing/meter_usage'), notFound, 'wrong method')
  t.match(await apiGet(kinde, undefined, '/'), notFound)
  t.equal(kinde.calls.other, 3)
})

t.test('faults', async (t) => {
  t.test('a status fault answers once with Kinde\'s error body, then the endpoint recovers', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'status', status: 429 })
    const throttled = await sendUsage(kinde, token, delta('1'))
    t.match(throttled, { status: 429, body: { errors: [{ code: 'THROTTLED', message: String }] } })
    t.equal(throttled.headers.get('ratelimit-reset'), '1')
    t.equal(throttled.headers.get('retry-after'), null)
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1')
    t.same(kinde.injected, [{ endpoint: 'meter_usage', kind: 'status', status: 429, applied: false }])
    t.same(kinde.records.map((r) => [r.status, r.applied]), [[429, false], [200, true]])
  })

  t.test('status faults carry the configured headers, statuses and hit counts', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'status', status: 429, rateLimitReset: 7, retryAfter: 3 })
    kinde.fault({ kind: 'status', status: 503, retryAfter: 2, times: 2 })
    kinde.fault({ kind: 'status' })
    kinde.fault({ kind: 'status', status: 599 })
    const got: Answer[] = []
    for (let i = 0; i < 6; i++) got.push(await sendUsage(kinde, token, delta('1')))
    t.same(got.map((a) => a.status), [429, 503, 503, 500, 599, 200])
    t.same([got[0].headers.get('ratelimit-reset'), got[0].headers.get('retry-after')], ['7', '3'])
    t.same([got[1].headers.get('ratelimit-reset'), got[1].headers.get('retry-after')], [null, '2'])
    t.same(got[1].body, { errors: [{ code: 'SERVICE_UNAVAILABLE', message: 'Service Unavailable' }] })
    t.same(got[3].body, { errors: [{ code: 'INTERNAL_SERVER_ERROR', message: 'Internal Server Error' }] })
    t.match(got[4].body, { errors: [{ code: 'ERROR' }] })
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1')
  })

  t.test('faults target the endpoint named and can be cleared', async (t) => {
    const kinde = await start(t, { ...billing, users: [{ id: 'kp_1' }] })
    kinde.fault({ endpoint: 'token', kind: 'status', status: 502 })
    t.match(await requestToken(kinde), { status: 502, body: { errors: [{ code: 'BAD_GATEWAY' }] } })
    const token = await getToken(kinde)
    kinde.fault({ endpoint: 'user', kind: 'status', status: 504, times: 5 })
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200, 'other endpoints are unaffected')
    t.equal((await apiGet(kinde, token, '/api/v1/user?id=kp_1')).status, 504)
    kinde.clearFaults()
    t.equal((await apiGet(kinde, token, '/api/v1/user?id=kp_1')).status, 200)
    t.same(kinde.injected.map((f) => [f.endpoint, f.status]), [['token', 502], ['user', 504]])
  })

  t.test('with apply, a status fault hides a record that was applied', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'status', status: 500, apply: true, times: 2 })
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 500)
    t.equal((await sendUsage(kinde, token, delta('1', 'not_in_plan'))).status, 500)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1')
    t.same(kinde.injected.map((f) => f.applied), [true, false], 'only a valid record is applied')
  })

  t.test('a reset drops the connection before applying, or after with apply', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'reset' })
    await t.rejects(sendUsage(kinde, token, delta('1')))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
    kinde.fault({ kind: 'reset', apply: true })
    await t.rejects(sendUsage(kinde, token, delta('1')))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1', 'the client cannot tell this from the first reset')
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200, 'the next connection works')
    t.same(kinde.injected, [
      { endpoint: 'meter_usage', kind: 'reset', applied: false },
      { endpoint: 'meter_usage', kind: 'reset', applied: true },
    ])
    t.same(kinde.records.map((r) => r.status), [0, 0, 200], 'no answer was sent for the resets')
  })

  t.test('a delay answers normally once it has passed', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'delay', delayMs: 30 })
    kinde.fault({ kind: 'delay' })
    const began = performance.now()
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    t.ok(performance.now() - began >= 25, 'answered after the delay')
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2')
    t.same(kinde.injected.map((f) => [f.kind, f.applied]), [['delay', true], ['delay', true]])
  })

  t.test('a client that gives up during a delay leaves the record applied only with apply', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    const abandon = async (): Promise<void> => {
      const faultsBefore = kinde.injected.length
      const client = new AbortController()
      const pending = sendUsage(kinde, token, delta('1'), { signal: client.signal })
      await until(() => kinde.injected.length > faultsBefore) // the request is being held
      client.abort()
      await t.rejects(pending)
    }
    kinde.fault({ kind: 'delay', delayMs: 60_000, apply: true })
    await abandon()
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1', 'applied although the client saw no answer')
    kinde.fault({ kind: 'delay', delayMs: 60_000 })
    await abandon()
    await kinde.close() // lets the emulator finish with the abandoned request
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1', 'an abandoned request is not applied after the delay')
    t.same(kinde.injected.map((f) => f.applied), [true, false])
    t.same(kinde.records.map((r) => r.status), [0, 0])
  })

  t.test('close() cuts a pending delay short without answering', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'delay', delayMs: 60_000 })
    const pending = sendUsage(kinde, token, delta('1'))
    await until(() => kinde.injected.length === 1)
    await kinde.close()
    await t.rejects(pending)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
  })

  t.test('probabilistic faults repeat exactly for the same seed', async (t) => {
    const pattern = async (options: EmulatorOptions): Promise<number[]> => {
      const kinde = await start(t, { ...options, users: [{ id: 'kp_1' }] })
      const token = await getToken(kinde)
      kinde.fault({ endpoint: 'user', kind: 'status', status: 503, probability: 0.5 })
      const statuses: number[] = []
      for (let i = 0; i < 20; i++) statuses.push((await apiGet(kinde, token, '/api/v1/user?id=kp_1')).status)
      t.equal(kinde.injected.length, statuses.filter((s) => s === 503).length)
      return statuses
    }
    const first = await pattern({ seed: 42 })
    t.same(await pattern({ seed: 42 }), first)
    t.notSame(await pattern({ seed: 7 }), first)
    const unseeded = await pattern({})
    t.ok(unseeded.includes(200) && unseeded.includes(503), 'some but not all requests are hit')
    t.same(await pattern({ seed: 1 }), unseeded, 'the default seed is 1')
  })
})

t.test('rate limiter on /api/* answers 429 with RateLimit-Reset beyond its rate', async (t) => {
  const kinde = await start(t, { ...billing, rateLimit: { requestsPerSecond: 10 } })
  const token = await getToken(kinde)
  const burst = await Promise.all(Array.from({ length: 15 }, () => sendUsage(kinde, token, delta('1'))))
  const passed = burst.filter((a) => a.status === 200).length
  const throttled = burst.filter((a) => a.status === 429)
  t.ok(passed >= 10, 'a burst of one second\'s worth passes')
  t.equal(passed + throttled.length, burst.length)
  t.ok(throttled.length > 0, 'requests beyond it are throttled')
  t.match(throttled[0].body, { errors: [{ code: 'THROTTLED' }] })
  t.equal(throttled[0].headers.get('ratelimit-reset'), '1')
  t.equal(kinde.usage(AGREEMENT, FEATURE), String(passed))
  t.equal((await requestToken(kinde)).status, 200, 'the token endpoint is not limited')
  t.same(kinde.injected, [], 'throttling is not an injected fault')
  await sleep(150) // the bucket refills in real time: one request per 100 ms
  t.equal((await sendUsage(kinde, token, delta('1'))).status, 200, 'the bucket refills')
})

t.test('tokens are RS256 JWTs verifiable with the JWKS', async (t) => {
  t.test('the JWKS is served at both well-known paths', async (t) => {
    const kinde = await start(t)
    t.equal(kinde.jwksUrl, `${kinde.url}/.well-known/jwks.json`)
    const jwks = await answer(await fetch(kinde.jwksUrl))
    t.match(jwks.body, { keys: [{ kty: 'RSA', alg: 'RS256', use: 'sig', kid: String, n: String, e: 'AQAB' }] })
    t.same((await answer(await fetch(`${kinde.url}/.well-known/jwks`))).body, jwks.body)
    t.equal(kinde.calls.jwks, 2)
  })

  t.test('a minted user token carries Kinde\'s claims and verifies', async (t) => {
    const kinde = await start(t)
    const jwks = (await answer(await fetch(kinde.jwksUrl))).body
    const claims = verifyJwt(kinde.mintAccessToken({ sub: 'kp_1', org_code: 'org_1' }), jwks)
    t.match(claims, { iss: kinde.url, sub: 'kp_1', org_code: 'org_1', aud: [EMULATOR_USER_AUDIENCE], jti: String })
    t.equal(claims.exp - claims.iat, 3600)
    t.ok(Math.abs(claims.iat - Date.now() / 1000) < 5)
    const custom = verifyJwt(kinde.mintAccessToken({ sub: 'kp_2', aud: 'my-api', expiresInSeconds: -10, scp: ['openid'] }), jwks)
    t.match(custom, { sub: 'kp_2', aud: 'my-api', scp: ['openid'] })
    t.ok(custom.exp < Date.now() / 1000, 'a negative lifetime gives an expired token')
  })

  t.test('a tampered token does not verify', async (t) => {
    const kinde = await start(t)
    const jwks = (await answer(await fetch(kinde.jwksUrl))).body
    const [header, , signature] = kinde.mintAccessToken({ sub: 'kp_1' }).split('.')
    const forged = Buffer.from(JSON.stringify({ sub: 'kp_admin', iss: kinde.url })).toString('base64url')
    t.equal(verifyJwt(`${header}.${forged}.${signature}`, jwks), undefined)
  })

  t.test('M2M tokens are JWTs for the API audience', async (t) => {
    const kinde = await start(t)
    const jwks = (await answer(await fetch(kinde.jwksUrl))).body
    const claims = verifyJwt(await getToken(kinde, { scope: 'read:users' }), jwks)
    t.match(claims, { iss: kinde.url, aud: [`${kinde.url}/api`], azp: kinde.clientId, scp: ['read:users'] })
  })
})

t.test('connections and shutdown', async (t) => {
  t.test('keep-alive connections are reused and close() ends them at once', async (t) => {
    const kinde = await startKindeEmulator()
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const fetchJwks = (): Promise<boolean> => new Promise((resolve, reject) => {
      const req = get(kinde.jwksUrl, { agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(req.reusedSocket))
      })
      req.on('error', reject)
    })
    t.equal(await fetchJwks(), false)
    t.equal(await fetchJwks(), true)
    const began = performance.now()
    await kinde.close()
    t.ok(performance.now() - began < 1000, 'close() does not wait for the idle connection to time out')
    await t.rejects(fetch(kinde.jwksUrl), 'the server no longer listens')
    await kinde.close()
    t.pass('closing twice is harmless')
  })

  t.test('listens on the port asked for, and fails when it is taken', async (t) => {
    const first = await start(t)
    const port = Number(new URL(first.url).port)
    await t.rejects(startKindeEmulator({ port }), { code: 'EADDRINUSE' })
    await first.close()
    const second = await start(t, { port })
    t.equal(second.url, `http://127.0.0.1:${port}`)
  })
})
