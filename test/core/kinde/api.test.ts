/**
 * The Management API calls as Kinde receives them, and how each answer to a meter usage send is
 * taken: delivered, retried after the wait Kinde asked for, or kept.
 */
import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'
import { coreOnStandIn, json, standIn } from './stand-in.js'

t.test('a meter usage send is a JSON POST that declares its type and length and asks for JSON back', async t => {
  const kinde = await standIn(t, () => undefined)
  const core = coreOnStandIn(t, kinde.url)
  core.record({ agreementId: 'agr_1' }, 'searches', 1.5)
  t.match(await core.flush(), { sent: 1 })
  const send = kinde.received.find(request => request.url === '/api/v1/billing/meter_usage')!
  t.match(send, { method: 'POST', headers: { authorization: 'Bearer stand-in-token', accept: 'application/json', 'content-type': 'application/json' } })
  t.equal(send.headers['content-length'], String(Buffer.byteLength(send.body)), 'the length is declared, not chunked')
  t.equal(send.headers['transfer-encoding'], undefined)
  t.match(JSON.parse(send.body), { customer_agreement_id: 'agr_1', billing_feature_code: 'searches', meter_value: '1.5', meter_type_code: 'delta' })
})

t.test('a look-up is a GET with the bearer token that asks for JSON and, sending no body, declares no content type', async t => {
  const kinde = await standIn(t, request => request.url.startsWith('/api/v1/user?') ? { status: 404, body: '' } : undefined)
  const core = coreOnStandIn(t, kinde.url)
  core.record({ userId: 'kp_ada' }, 'searches', 1)
  t.match(await core.flush(), { dropped: 1 })
  const lookUp = kinde.received.find(request => request.url.startsWith('/api/v1/user?'))!
  t.match(lookUp, { method: 'GET', body: '', headers: { authorization: 'Bearer stand-in-token', accept: 'application/json' } })
  t.equal(lookUp.headers['content-type'], undefined, 'no JSON body is claimed')
})

t.test('an answer of 300 is no delivery: Kinde may or may not have applied it, and the usage is retried', async t => {
  let answered = 0
  const kinde = await standIn(t, request => request.url === '/oauth2/token' || answered++ > 0 ? undefined : { status: 300, body: '' })
  const core = coreOnStandIn(t, kinde.url)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1, pending: 0 })
  t.equal(core.stats().failures.ambiguous, 1, 'counted as ambiguous, not as sent')
  t.equal(kinde.received.filter(request => request.method === 'POST' && request.url !== '/oauth2/token').length, 2, 'sent again after the 300')
})

t.test('RateLimit-Reset wins over Retry-After, also when it says 0: the retry goes at once', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0, retryAfter: 3_600 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1, pending: 0 }, 'not held for the hour Retry-After asked')
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('a RateLimit-Reset that is no count of seconds to wait (empty, negative, infinite) is passed over for Retry-After', async t => {
  // The flush's slot is an hour: a wait of two hours keeps the record pending, a wait of 0 lets it go again at once.
  const cases = [
    { reset: '', retryAfter: '7200', outcome: { sent: 0, pending: 1 } },
    { reset: '-1', retryAfter: '7200', outcome: { sent: 0, pending: 1 } },
    { reset: 'Infinity', retryAfter: '0', outcome: { sent: 1, pending: 0 } }
  ]
  for (const { reset, retryAfter, outcome } of cases) {
    t.test(`RateLimit-Reset ${reset}, Retry-After ${retryAfter}`, async t => {
      let sends = 0
      const kinde = await standIn(t, request => request.url === '/api/v1/billing/meter_usage' && sends++ === 0
        ? { status: 429, headers: { ...json, 'ratelimit-reset': reset, 'retry-after': retryAfter }, body: '{"errors":[{"code":"THROTTLED"}]}' }
        : undefined)
      const core = coreOnStandIn(t, kinde.url)
      core.record({ agreementId: 'agr_1' }, 'searches', 1)
      t.match(await core.flush(), outcome)
      t.equal(core.stats().failures.notApplied, 1)
    })
  }
})

t.test('a 503 with Retry-After in seconds holds the retry for that long', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ kind: 'status', status: 503, retryAfter: 1 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.match(outcome, { sent: 1 })
  t.ok(outcome.durationMs >= 1_000, `the retry waited out the second asked for (${outcome.durationMs} ms)`)
  t.equal(kinde.calls.meter_usage, 2)
})

t.test('a look-up Kinde fails names itself in the warning: user, organization or agreements', async t => {
  const cases = [
    { endpoint: 'user', customer: { userId: 'kp_ada' }, what: 'user look-up' },
    { endpoint: 'organization', customer: { orgCode: 'org_acme' }, what: 'organization look-up' },
    { endpoint: 'agreements', customer: { customerId: 'cus_1' }, what: 'agreements look-up' }
  ] as const
  for (const { endpoint, customer, what } of cases) {
    t.test(endpoint, async t => {
      const kinde = await emulator(t, { users: [{ id: 'kp_ada', customerId: 'cus_1' }], organizations: [{ code: 'org_acme', customerId: 'cus_1' }] })
      const { entries, logger } = memoryLogger()
      const core = coreOn(t, kinde, { logger })
      kinde.fault({ endpoint, kind: 'status', status: 500 })
      core.record(customer, 'searches', 1)
      t.match(await core.flush(), { sent: 0, pending: 1 })
      const warning = entries.find(entry => entry.level === 'warn')
      t.match(warning?.obj.err.message, new RegExp(`^kinde-metering: ${what} failed with HTTP 500: `))
    })
  }
})

t.test('an empty page of agreements that claims more ends the listing: the customer has none', async t => {
  const kinde = await standIn(t, request => request.url.startsWith('/api/v1/billing/agreements')
    ? { status: 200, headers: json, body: JSON.stringify({ agreements: [], has_more: true }) }
    : undefined)
  const drops: string[] = []
  const core = coreOnStandIn(t, kinde.url, { onDrop: (_records, reason) => drops.push(reason) })
  core.record({ customerId: 'cus_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 0, dropped: 1 })
  t.same(drops, ['no_agreement'])
  t.equal(kinde.received.filter(request => request.url.startsWith('/api/v1/billing/agreements')).length, 1, 'no page asked after the empty one')
})

t.test('a look-up answered 404 names no such user, as 400 does: the usage is reported without an agreement, not kept', async t => {
  const kinde = await emulator(t)
  const drops: string[] = []
  const core = coreOn(t, kinde, { onDrop: (_records, reason) => drops.push(reason) })
  kinde.fault({ endpoint: 'user', kind: 'status', status: 404 })
  core.record({ userId: 'kp_gone' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 0, dropped: 1 })
  t.same(drops, ['no_agreement'])
})

t.test('agreements are listed for the feature billed only: one page, however many agreements of other features', async t => {
  const kinde = await emulator(t, { customers: 0 })
  for (let i = 0; i < 120; i++) kinde.addAgreement({ id: `agr_other_${i}`, customerId: 'cus_big', features: ['renders'] })
  kinde.addAgreement({ id: 'agr_searches', customerId: 'cus_big', features: ['searches'] })
  const core = coreOn(t, kinde)
  core.record({ customerId: 'cus_big' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.usage('agr_searches', 'searches'), '1')
  t.equal(kinde.calls.agreements, 1, 'one page of agreements with the feature')
})

t.test('a look-up that cannot reach Kinde is a network error naming the look-up', async t => {
  const kinde = await emulator(t, { organizations: [{ code: 'org_acme', customerId: 'cus_1' }] })
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  kinde.fault({ endpoint: 'organization', kind: 'reset' })
  core.record({ orgCode: 'org_acme' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1 })
  const warning = entries.find(entry => entry.level === 'warn')
  t.equal(warning?.obj.err.code, 'KINDE_METERING_NETWORK_ERROR')
  t.match(warning?.obj.err.message, /^kinde-metering: organization look-up failed: /)
})

t.test('a meter usage send answered 404 (no Management API at that domain) was not applied: it is retried, not dropped', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ kind: 'status', status: 404 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1, dropped: 0 })
  t.equal(core.stats().failures.notApplied, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('a user whose billing customer id is empty has none: no agreements are looked up for it', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_blank', customerId: '' }] })
  const drops: string[] = []
  const core = coreOn(t, kinde, { onDrop: (_records, reason) => drops.push(reason) })
  core.record({ userId: 'kp_blank' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 0, dropped: 1 })
  t.same(drops, ['no_agreement'])
  t.equal(kinde.calls.agreements, 0)
})

t.test('an agreements answer that lists one without the feature first bills the one that includes it', async t => {
  // Kinde filters by feature_code; were an answer to list others too, the usage must not go to the first listed.
  const agreement = (id: string, feature: string): object => ({ id, plan_code: 'pro', expires_on: null, billing_group_id: 'bg_1', entitlements: [{ feature_code: feature, entitlement_id: `ent_${id}` }] })
  const kinde = await standIn(t, request => request.url.startsWith('/api/v1/billing/agreements')
    ? { status: 200, headers: json, body: JSON.stringify({ code: 'OK', message: 'Success', has_more: false, agreements: [agreement('agr_renders', 'renders'), agreement('agr_searches', 'searches')] }) }
    : undefined)
  const core = coreOnStandIn(t, kinde.url)
  core.record({ customerId: 'cus_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  const sends = kinde.received.filter(request => request.url === '/api/v1/billing/meter_usage')
  t.same(sends.map(send => JSON.parse(send.body).customer_agreement_id), ['agr_searches'])
})
