import t from 'tap'
import type { DroppedRecord, DropReason } from '../../../lib/index.js'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

const past = '2020-01-01T00:00:00.000Z'
const future = '2999-01-01T00:00:00.000Z'

t.test('the four ways to name a customer each bill the right agreement', async t => {
  const kinde = await emulator(t, {
    users: [{ id: 'kp_ada', customerId: 'cus_1' }],
    organizations: [{ code: 'org_acme', customerId: 'cus_2' }]
  })
  const core = coreOn(t, kinde)
  core.record({ agreementId: 'agr_3' }, 'searches', 1)
  core.record({ customerId: 'cus_3' }, 'searches', 2)
  core.record({ userId: 'kp_ada' }, 'searches', 3)
  core.record({ orgCode: 'org_acme' }, 'searches', 4)
  const outcome = await core.flush()
  t.equal(kinde.usage('agr_3', 'searches'), '3', 'agreementId and customerId of the same agreement add up')
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.equal(kinde.usage('agr_2', 'searches'), '4')
  t.equal(outcome.sent, 3, 'one record per (agreement, feature), however it was named')
  t.same(core.stats().lookups, { users: 1, organizations: 1, agreements: 3 })
})

t.test('pagination is followed and an expired agreement listed first is passed over', async t => {
  const kinde = await emulator(t, { customers: 0 })
  for (let i = 0; i < 150; i++) kinde.addAgreement({ id: `old_${String(i).padStart(3, '0')}`, customerId: 'cus_big', features: ['searches'], expiresOn: past })
  kinde.addAgreement({ id: 'agr_other_feature', customerId: 'cus_big', features: ['renders'] })
  kinde.addAgreement({ id: 'agr_current', customerId: 'cus_big', features: ['searches'], expiresOn: future })
  const core = coreOn(t, kinde)
  core.record({ customerId: 'cus_big' }, 'searches', 5)
  await core.flush()
  t.equal(kinde.usage('agr_current', 'searches'), '5')
  t.equal(kinde.calls.agreements, 2, 'two pages of up to 100')
})

t.test('concurrent look-ups of one key are coalesced into one request', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_new', customerId: 'cus_1' }], organizations: [{ code: 'org_x', customerId: 'cus_1' }] })
  const core = coreOn(t, kinde)
  // One new user, 100 features in one flush: 100 sends resolve the same user at once.
  const features = Array.from({ length: 100 }, (_, i) => `f${i}`)
  kinde.addAgreement({ id: 'agr_many', customerId: 'cus_9', features })
  kinde.addUser({ id: 'kp_many', customerId: 'cus_9' })
  for (const feature of features) core.record({ userId: 'kp_many' }, feature, 1)
  await core.flush()
  t.equal(kinde.calls.user, 1, 'one user look-up for 100 concurrent sends')
  t.equal(kinde.calls.meter_usage, 100)
  // A user and an organization of the same customer share the agreement look-up.
  core.record({ userId: 'kp_new' }, 'searches', 1)
  core.record({ orgCode: 'org_x' }, 'searches', 1)
  await core.flush()
  t.equal(kinde.calls.agreements, 100 + 1)
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('look-ups are cached for the TTL, then asked again', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_ada', customerId: 'cus_1' }] })
  const cached = coreOn(t, kinde)
  for (let i = 0; i < 5; i++) {
    cached.record({ userId: 'kp_ada' }, 'searches', 1)
    await cached.flush()
  }
  t.equal(kinde.calls.user, 1, 'five flushes, one user look-up')
  t.equal(kinde.calls.agreements, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '5')

  const expiring = coreOn(t, kinde, { agreementCacheTtl: 1 })
  expiring.record({ userId: 'kp_ada' }, 'searches', 1)
  await expiring.flush()
  // The user moves to another customer; after the TTL new usage follows.
  kinde.addUser({ id: 'kp_ada', customerId: 'cus_2' })
  await new Promise(resolve => setTimeout(resolve, 2)) // outlive the 1 ms TTL
  expiring.record({ userId: 'kp_ada' }, 'searches', 1)
  await expiring.flush()
  t.equal(kinde.calls.user, 3)
  t.equal(kinde.usage('agr_2', 'searches'), '1')
})

t.test('a stale answer is served while its refresh fails', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_ada', customerId: 'cus_1' }] })
  const core = coreOn(t, kinde, { agreementCacheTtl: 1 })
  core.record({ userId: 'kp_ada' }, 'searches', 1)
  await core.flush()
  kinde.fault({ endpoint: 'user', kind: 'status', status: 503, times: 10 })
  kinde.fault({ endpoint: 'agreements', kind: 'status', status: 503, times: 10 })
  await new Promise(resolve => setTimeout(resolve, 2)) // outlive the 1 ms TTL
  core.record({ userId: 'kp_ada' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  // Each expired answer (the user's customer, that customer's agreements) was refreshed once, failed, and served stale.
  t.same(kinde.injected.map(fault => `${fault.endpoint} ${fault.status}`), ['user 503', 'agreements 503'], 'one failed refresh of each')
  t.same(core.stats().lookups, { users: 2, organizations: 0, agreements: 2 }, 'no look-up repeated after the failed refresh')
})

t.test('look-up failures leave the usage pending; nothing is lost', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_ada', customerId: 'cus_1' }], organizations: [{ code: 'org_acme', customerId: 'cus_2' }] })
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  kinde.fault({ endpoint: 'user', kind: 'status', status: 429, rateLimitReset: 0 })
  kinde.fault({ endpoint: 'organization', kind: 'reset' })
  core.record({ userId: 'kp_ada' }, 'searches', 2)
  core.record({ userId: 'kp_ada' }, 'renders', 1) // a second feature joins the same failing user look-up
  core.record({ orgCode: 'org_acme' }, 'searches', 3)
  core.record({ agreementId: 'agr_3' }, 'searches', 1)
  const first = await core.flush()
  t.equal(first.sent, 1, 'other records are not held up')
  t.equal(first.pending, 3)
  t.match(first.error, { kind: 'lookup', message: /^kinde-metering: (user|organization) look-up failed/ }, 'the outcome says a look-up held the usage back')
  t.equal(core.stats().pending.units, '6')
  t.equal(kinde.calls.user, 1, 'the two features shared one look-up')
  t.ok(entries.some(entry => entry.level === 'warn' && /look-up failed/.test(entry.msg ?? '')))
  const second = await core.flush()
  t.equal(second.sent, 3)
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'renders'), '1')
  t.equal(kinde.usage('agr_2', 'searches'), '3')
  t.equal(core.stats().pending.pairs, 0)
})

t.test('no agreement: reported once per reference and feature per TTL, never retried, never holding up others', async t => {
  const kinde = await emulator(t, {
    users: [{ id: 'kp_free' }, { id: 'kp_lapsed', customerId: 'cus_lapsed' }],
    organizations: [{ code: 'org_nobill' }]
  })
  kinde.addAgreement({ id: 'agr_lapsed', customerId: 'cus_lapsed', features: ['searches'], expiresOn: past })
  const drops: Array<{ records: DroppedRecord[], reason: DropReason }> = []
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, onDrop: (records, reason) => drops.push({ records, reason }) })
  const round = async (): Promise<void> => {
    core.record({ userId: 'kp_free' }, 'searches', 1)
    core.record({ userId: 'kp_lapsed' }, 'searches', 2)
    core.record({ userId: 'kp_unknown' }, 'searches', 3)
    core.record({ orgCode: 'org_nobill' }, 'searches', 4)
    core.record({ customerId: 'cus_1' }, 'unplanned_feature', 5)
    core.record({ customerId: 'cus_unknown' }, 'searches', 6)
    core.record({ agreementId: 'agr_1' }, 'searches', 1)
    await core.flush()
  }
  await round()
  await round()
  t.equal(kinde.usage('agr_1', 'searches'), '2', 'billable usage went out both times')
  t.equal(drops.length, 2)
  t.equal(drops[0].reason, 'no_agreement')
  t.same(drops[0].records.map(record => [record.customer, record.feature, record.value]).sort((a, b) => Number(a[2]) - Number(b[2])), [
    [{ userId: 'kp_free' }, 'searches', '1'],
    [{ userId: 'kp_lapsed' }, 'searches', '2'],
    [{ userId: 'kp_unknown' }, 'searches', '3'],
    [{ orgCode: 'org_nobill' }, 'searches', '4'],
    [{ customerId: 'cus_1' }, 'unplanned_feature', '5'],
    [{ customerId: 'cus_unknown' }, 'searches', '6']
  ])
  t.same(core.stats().dropped.no_agreement, { records: 12, units: '42' })
  t.equal(core.stats().pending.pairs, 0, 'not retried')
  t.equal(entries.filter(entry => entry.level === 'warn' && /no active Kinde agreement/.test(entry.msg ?? '')).length, 1, 'warned once per TTL')
  t.equal(kinde.calls.user, 3, 'the answer "none" is cached too')
  t.equal(kinde.calls.agreements, 3, 'agreements are looked up only for the customers found, once each')
})

t.test('a later agreement bills new usage once the TTL has passed', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_trial' }] })
  const drops: DropReason[] = []
  const core = coreOn(t, kinde, { agreementCacheTtl: 1, onDrop: (_records, reason) => drops.push(reason) })
  core.record({ userId: 'kp_trial' }, 'searches', 1)
  await core.flush()
  t.same(drops, ['no_agreement'])
  kinde.addUser({ id: 'kp_trial', customerId: 'cus_2' })
  await new Promise(resolve => setTimeout(resolve, 2)) // outlive the 1 ms TTL
  core.record({ userId: 'kp_trial' }, 'searches', 1)
  await core.flush()
  t.equal(kinde.usage('agr_2', 'searches'), '1')
})

t.test('identifiers from requests are bounded: oversized or mistyped references are refused and counted', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  t.notOk(core.record({ userId: 'u'.repeat(257) }, 'searches', 1))
  t.notOk(core.record({ orgCode: 42 } as any, 'searches', 1))
  t.notOk(core.record({ customerId: '' }, 'searches', 1))
  t.notOk(core.record({} as any, 'searches', 1))
  t.notOk(core.record(null as any, 'searches', 1))
  t.notOk(core.record({ agreementId: 'agr_1' }, 'f'.repeat(257), 1))
  t.notOk(core.record({ agreementId: 'agr_1' }, 7 as any, 1))
  t.ok(core.record({ userId: 'u'.repeat(256) }, 'searches', 1))
  t.equal(core.stats().refused.invalidCustomer, 5)
  t.equal(core.stats().refused.invalidFeature, 2, 'a bad feature has its own counter')
  t.equal(core.stats().pending.pairs, 1, 'nothing refused was stored')
})

t.test('a refused customer is described as received: its fields, or its value and type', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  const received = [null, 'agr_1', 'a'.repeat(100), [], {}, 42]
  received.forEach((customer, i) => core.record(customer as any, 'searches', 1, `GET /${i}`))
  t.same(entries.map(entry => entry.msg?.replace(/.*, got /, '')), [
    'null (null)', '"agr_1" (string)', `"${'a'.repeat(64)}…" (string)`, 'an array', 'an object with no fields', '42 (number)'
  ])
  t.equal(core.stats().refused.invalidCustomer, received.length)
})

t.test('a customer reference naming two kinds is refused, counted and logged once, and bills neither', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  for (let i = 0; i < 3; i++) t.notOk(core.record({ userId: 'kp_1', agreementId: 'agr_1' } as any, 'searches', 1, 'GET /a'))
  t.notOk(core.set({ orgCode: 'org_1', customerId: 'cus_1' } as any, 'seats', 4, 'GET /a'))
  t.ok(core.record({ agreementId: 'agr_1', userId: undefined } as any, 'searches', 1, 'GET /a'), 'a field left undefined names no kind')
  t.equal(core.stats().refused.invalidCustomer, 4)
  const warnings = entries.filter(entry => entry.level === 'warn')
  t.same(warnings.map(entry => entry.msg), [
    'kinde-metering: usage not recorded: customer must name exactly one of agreementId, customerId, userId or orgCode, as a string of 1 to 256 characters, got an object with userId, agreementId',
    'kinde-metering: usage not recorded: customer must name exactly one of agreementId, customerId, userId or orgCode, as a string of 1 to 256 characters, got an object with orgCode, customerId'
  ], 'once per origin and feature, naming the fields received')
  await core.flush()
  t.same(kinde.records.map(record => [record.customer_agreement_id, record.meter_value]), [['agr_1', '1']], 'only the valid reference was billed')
})
