/**
 * Absolute meters (`set()`, Kinde's `meter_type_code: 'absolute'`): the latest value per
 * (customer, feature) is sent once per flush, never overtaken by an older one, beside exact deltas.
 */
import t from 'tap'
import { adapterHooks } from '../../../lib/core/adapter-hooks.js'
import { Aggregator } from '../../../lib/core/usage/aggregator.js'
import { JournalState } from '../../../lib/core/journal/format.js'
import { MemoryStore } from '../../../lib/core/store/usage-store.js'
import { keysOf } from '../../../lib/core/store/take.js'
import { RefKind, type UsageEntry } from '../../../lib/core/usage/types.js'
import { kindeMetering as expressMetering } from '../../../lib/express.js'
import type { DroppedRecord } from '../../../lib/index.js'
import { coreOn, emulator, meteredApp, memoryLogger, setAt } from '../../fixtures.js'
import { deadJournal } from '../journal/children.js'

const seats = (id: string, micros: number, at: number, extra: Partial<UsageEntry> = {}): UsageEntry =>
  ({ kind: RefKind.Agreement, id, feature: 'seats', micros, at, absolute: true, ...extra })

t.test('the latest value set per pair is sent once per flush, as absolute, with the time it was set', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  core.set({ agreementId: 'agr_1' }, 'seats', 3)
  core.set({ agreementId: 'agr_1' }, 'seats', 12)
  const before = Date.now()
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', 7.5), true)
  const after = Date.now()
  core.set({ agreementId: 'agr_2' }, 'seats', 4)
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  core.record({ agreementId: 'agr_1' }, 'searches', 3)
  t.same(core.stats().pending, { pairs: 3, units: '5' }, 'levels are pending pairs, not units')

  t.equal((await core.flush()).sent, 3)
  const sent = kinde.records.filter(record => record.customer_agreement_id === 'agr_1' && record.billing_feature_code === 'seats')
  t.equal(sent.length, 1, 'one record for the pair, not one per value')
  t.equal(sent[0].meter_type_code, 'absolute')
  t.equal(sent[0].meter_value, '7.5')
  const at = Date.parse(sent[0].meter_usage_timestamp!)
  t.ok(at >= before && at <= after, 'stamped with the time of the latest value')
  t.equal(kinde.records.find(record => record.billing_feature_code === 'searches')!.meter_type_code, 'delta')
  t.same(core.stats().sent, { records: 3, units: '5' }, 'sent units are the deltas')

  core.set({ agreementId: 'agr_1' }, 'seats', 9)
  core.set({ agreementId: 'agr_1' }, 'seats', 0)
  await core.flush()
  t.equal(kinde.usage('agr_1', 'seats'), '0', 'zero is a level like any other, and replaces the previous one')
  t.equal(kinde.usage('agr_2', 'seats'), '4')
  t.equal(kinde.usage('agr_1', 'searches'), '5')
  t.equal((await core.flush()).sent, 0, 'a value is sent once, not at every flush')
})

t.test('a feature is delta or absolute: the other kind is refused, counted and logged once, never sent', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  t.equal(core.record({ agreementId: 'agr_1' }, 'searches', 1), true)
  t.equal(core.set({ agreementId: 'agr_1' }, 'searches', 10, 'GET /a'), false)
  t.equal(core.set({ agreementId: 'agr_1' }, 'searches', 11, 'GET /a'), false)
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', 5), true)
  t.equal(core.record({ agreementId: 'agr_2' }, 'seats', 1, 'GET /b'), false, 'refused for any customer: a Kinde meter is one kind')
  adapterHooks(core).recordAll({ agreementId: 'agr_1' }, ['seats', 'searches'], [1, 1], 'GET /b')
  t.equal(core.stats().refused.mixedKinds, 4)
  const warnings = entries.filter(entry => entry.level === 'warn' && /record\(\) \(delta\) or with set\(\) \(absolute\)/.test(entry.msg ?? ''))
  t.same(warnings.map(entry => entry.obj), [{ origin: 'GET /a', feature: 'searches' }, { origin: 'GET /b', feature: 'seats' }], 'once per origin and feature')
  await core.flush()
  t.same(kinde.records.map(record => [record.billing_feature_code, record.meter_type_code, record.meter_value]).sort(),
    [['searches', 'delta', '2'], ['seats', 'absolute', '5']])
})

t.test('set() refuses what record() refuses: bad values, bad customers, after close', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', -1), false)
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', Number.NaN), false)
  t.equal(core.set({ agreementId: '' }, 'seats', 1), false)
  t.equal(core.set(null as any, 'seats', 1), false)
  t.equal(core.set({ customerId: 'cus_1' }, 'x'.repeat(257), 1), false)
  t.equal(core.set({ userId: 42 } as any, 'seats', 1), false)
  t.same(core.stats().refused, { invalidValue: 2, invalidFeature: 1, invalidCustomer: 3, customerError: 0, countStatusError: 0, afterClose: 0, mixedKinds: 0 })
  await core.close()
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', 1), false)
  t.equal(core.stats().refused.afterClose, 1)
  t.equal(kinde.calls.meter_usage ?? 0, 0)
})

t.test('values of references resolving to one agreement: the latest is the level', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_1', customerId: 'cus_1' }], organizations: [{ code: 'org_1', customerId: 'cus_1' }] })
  const core = coreOn(t, kinde)
  const base = Date.now() - 10_000
  setAt(base, () => core.set({ agreementId: 'agr_1' }, 'seats', 4))
  setAt(base + 1000, () => core.set({ customerId: 'cus_1' }, 'seats', 5))
  setAt(base + 2000, () => core.set({ userId: 'kp_1' }, 'seats', 6))
  setAt(base + 3000, () => core.set({ orgCode: 'org_1' }, 'seats', 7))
  await core.flush()
  t.same(kinde.records.map(record => record.meter_value), ['7'], 'one record for the agreement')
  t.equal(kinde.records[0].meter_usage_timestamp, new Date(base + 3000).toISOString())
  t.equal(kinde.usage('agr_1', 'seats'), '7')
})

t.test('an ambiguous absolute send is retried even under ambiguous: drop (it cannot count twice)', async t => {
  const kinde = await emulator(t)
  const drops: DroppedRecord[][] = []
  const core = coreOn(t, kinde, { ambiguous: 'drop', onDrop: records => { drops.push(records) } })
  kinde.fault({ kind: 'status', status: 500, apply: true })
  kinde.fault({ kind: 'reset' })
  core.set({ agreementId: 'agr_1' }, 'seats', 8)
  t.equal((await core.flush()).sent, 1)
  t.equal(kinde.usage('agr_1', 'seats'), '8')
  t.same(drops, [])
  t.equal(core.stats().failures.ambiguous, 2)
})

t.test('a rejected absolute value is reported as absolute, with no units counted', async t => {
  const kinde = await emulator(t)
  const drops: DroppedRecord[][] = []
  const core = coreOn(t, kinde, { onDrop: records => { drops.push(records) } })
  core.set({ agreementId: 'agr_unknown' }, 'seats', 8)
  await core.flush()
  t.match(drops, [[{ customer: { agreementId: 'agr_unknown' }, feature: 'seats', value: '8', absolute: true }]])
  t.same(core.stats().dropped.rejected, { records: 1, units: '0' })
})

t.test('over many flushes through 429, 503 and resets, Kinde ends with the last value set; deltas beside it stay exact', async t => {
  const kinde = await emulator(t, { seed: 18 })
  const core = coreOn(t, kinde, { concurrency: 2, retry: { attempts: 2, baseDelay: 1, maxDelay: 2 } })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.001, probability: 0.15 })
  kinde.fault({ kind: 'status', status: 503, probability: 0.15 })
  kinde.fault({ kind: 'reset', probability: 0.15 })
  const last = new Map<string, number>()
  const searches = new Map<string, number>()
  let leftOver = 0
  for (let round = 0; round < 30; round++) {
    for (let n = 0; n < 5; n++) {
      for (const agreement of ['agr_1', 'agr_2', 'agr_3']) {
        const value = Math.floor(Math.random() * 1000) / 4
        core.set({ agreementId: agreement }, 'seats', value)
        last.set(agreement, value)
        core.record({ agreementId: agreement }, 'searches', 1)
        searches.set(agreement, (searches.get(agreement) ?? 0) + 1)
      }
    }
    leftOver += (await core.flush()).pending
  }
  t.ok(leftOver > 0, `faults left records for later flushes (${leftOver})`)
  kinde.clearFaults()
  await core.flush()
  for (const agreement of ['agr_1', 'agr_2', 'agr_3']) {
    t.equal(kinde.usage(agreement, 'seats'), String(last.get(agreement)), `${agreement}: the last value set`)
    t.equal(kinde.usage(agreement, 'searches'), String(searches.get(agreement)), `${agreement}: every search once`)
  }
  t.equal(core.stats().pending.pairs, 0)
})

t.test('Fastify and Express expose set() on their metering core', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.put('/seats/:n', async request => {
    app.metering.set({ agreementId: 'agr_1' }, 'seats', Number((request.params as { n: string }).n))
    return 'ok'
  })
  await app.inject({ method: 'PUT', url: '/seats/3' })
  await app.inject({ method: 'PUT', url: '/seats/4' })
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'seats'), '4')

  const middleware = expressMetering({ domain: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret, customer: () => undefined, flushInterval: 3_600_000 })
  t.teardown(() => middleware.close())
  middleware.metering.set({ agreementId: 'agr_2' }, 'storage_gb', 1.25)
  await middleware.metering.flush()
  t.equal(kinde.usage('agr_2', 'storage_gb'), '1.25')
})

t.test('a value that failed to send comes back only if none was set since', async t => {
  const store = new MemoryStore()
  store.add({ entries: [seats('agr_1', 1, 10)], oldest: 10 })
  const taken = await store.take()
  store.add({ entries: [seats('agr_1', 2, 10)], oldest: 10 }) // set since, in the same millisecond
  store.putBack(taken.id, keysOf(taken.entries))
  store.settle(taken.id)
  const next = await store.take()
  t.same(next.entries.map(({ key, ...entry }) => entry), [seats('agr_1', 2, 10)], 'the value set since wins')

  store.putBack(next.id, keysOf(next.entries))
  store.settle(next.id)
  t.same((await store.take()).entries.map(({ key, ...entry }) => entry), [seats('agr_1', 2, 10)], 'with nothing set since, the failed value is pending again')
})

t.test('latest across origins: later time wins, then the greater origin, whatever the order of arrival', async t => {
  const agg = new Aggregator()
  agg.merge({ entries: [seats('a', 1, 20, { origin: 'b' })], oldest: 20 })
  agg.merge({ entries: [seats('a', 2, 10, { origin: 'z' })], oldest: 10 })
  agg.merge({ entries: [seats('a', 3, 20, { origin: 'a' })], oldest: 20 })
  agg.merge({ entries: [seats('a', 4, 20, { origin: 'c' })], oldest: 20 }, true)
  t.same(agg.drain().entries, [seats('a', 4, 20, { origin: 'c' })])
  t.equal(agg.total(), 0, 'a level is not summed')
})

t.test('a clock stepping back never makes a later value older', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  const base = Date.now()
  setAt(base, () => core.set({ agreementId: 'agr_1' }, 'seats', 1))
  await core.flush()
  setAt(base - 60_000, () => core.set({ agreementId: 'agr_1' }, 'seats', 2))
  await core.flush()
  t.same(kinde.records.map(record => [record.meter_value, record.meter_usage_timestamp]),
    [['1', new Date(base).toISOString()], ['2', new Date(base).toISOString()]], 'stamped no earlier than the value before')
})

t.test('past the itemized overflow, absolute values are still counted as dropped', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { maxPendingPairs: 1 })
  for (let i = 0; i <= 10_001; i++) core.set({ agreementId: `agr_x${i}` }, 'seats', 1)
  t.same(core.stats().dropped.overflow, { records: 1, units: '0' }, 'beyond the 10,000 itemized pairs: counted at once')
})

t.test('past 10,000 features, new ones are metered without their kind being remembered', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  // Zero amounts: the features are claimed, nothing is left to send.
  for (let i = 0; i < 10_000; i++) core.record({ agreementId: 'agr_1' }, `feature_${i}`, 0)
  t.equal(core.record({ agreementId: 'agr_1' }, 'feature_x', 1), true)
  t.equal(core.set({ agreementId: 'agr_1' }, 'feature_x', 1), true, 'not remembered: not refused')
  t.equal(core.set({ agreementId: 'agr_1' }, 'feature_1', 1), false, 'remembered: refused')
})

t.test('absolute values take no room beyond maxPendingPairs: past it they are reported as overflow', async t => {
  const kinde = await emulator(t)
  const drops: DroppedRecord[][] = []
  const core = coreOn(t, kinde, { maxPendingPairs: 1, onDrop: records => { drops.push(records) } })
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', 1), true)
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', 2), true, 'a pair held takes a new value')
  t.equal(core.set({ agreementId: 'agr_2' }, 'seats', 3), true)
  await core.flush()
  t.equal(kinde.usage('agr_1', 'seats'), '2')
  t.match(drops, [[{ customer: { agreementId: 'agr_2' }, value: '3', absolute: true }]])
  t.same(core.stats().dropped.overflow, { records: 1, units: '0' })
})

t.test('journal replay keeps the latest value; a delivery forgets only the value it delivered', async t => {
  const replay = (lines: Array<Parameters<JournalState['apply']>[0]>, dropInFlight = false): UsageEntry[] => {
    const state = new JournalState()
    for (const line of lines) state.apply(line)
    return state.split(dropInFlight).pending
  }
  const writer = new JournalState()
  const lines = [
    writer.add([seats('agr_1', 1_000_000, 10)]),
    writer.take([seats('agr_1', 1_000_000, 10)]),
    writer.add([seats('agr_1', 2_000_000, 20)]),
    writer.delivered([seats('agr_1', 1_000_000, 10)])
  ]
  t.same(replay(lines), [seats('agr_1', 2_000_000, 20)], 'set while the older one was sent: still pending')
  t.same(replay(lines, true), [seats('agr_1', 2_000_000, 20)], 'never dropped as in flight: it is sent again')
  t.same(replay([...lines, writer.settle([seats('agr_1', 2_000_000, 20)])]), [], 'settled: forgotten')
  t.same(replay([writer.add([seats('agr_2', 5, 30)]), writer.add([seats('agr_2', 4, 25)])]), [seats('agr_2', 5, 30)], 'an older value never replaces a later one')
  t.match(writer.snapshot({ t: 'H', id: 'x', absorbed: [] }), /\[0,"agr_2","seats",5,30,1\]/, 'a rewrite keeps absolute values')
})

t.test('a server on the directory of one that was killed sends its latest values, in flight or not, never an older one', async t => {
  const dir = t.testdir()
  await deadJournal(t, dir, [
    { append: [[0, 'agr_1', 'seats', 4_000_000, 1000, 1], [1, 'cus_2', 'seats', 5_000_000, 1000, 1], [0, 'agr_3', 'seats', 1_000_000, 1000, 1]] },
    { take: [[0, 'agr_1', 'seats', 4_000_000, 1000, 1], [0, 'agr_3', 'seats', 1_000_000, 1000, 1]] },
    { send: [0, 1] },
    // agr_3 was delivered; agr_1 was in flight when the process died.
    { deliver: [1] },
    // Set later, through the agreement: the level of cus_2's agreement.
    { append: [[0, 'agr_2', 'seats', 6_000_000, 2000, 1]] }
  ])
  const kinde = await emulator(t)
  const drops: DroppedRecord[][] = []
  const core = coreOn(t, kinde, { journal: { dir }, ambiguous: 'drop', onDrop: records => { drops.push(records) } })
  await core.ready()
  t.match(core.stats().journal, { recovered: { journals: 1, pending: { records: 3, units: '0' }, ambiguous: { records: 0 } } },
    'a level in flight is pending again, never reported ambiguous: sending it twice cannot count it twice')
  await core.flush()
  t.equal(kinde.usage('agr_1', 'seats'), '4')
  t.equal(kinde.usage('agr_2', 'seats'), '6', 'the later value, though the older one came through the customer')
  t.equal(kinde.usage('agr_3', 'seats'), '0', 'delivered before the crash: not sent again')
  t.equal(kinde.records.length, 2)
  t.same(drops, [])
})

t.test('levels of several features of one customer are each kept and sent', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  core.set({ agreementId: 'agr_1' }, 'seats', 3)
  core.set({ agreementId: 'agr_1' }, 'storage_gb', 40)
  core.set({ agreementId: 'agr_1' }, 'seats', 5)
  t.same(core.stats().pending, { pairs: 2, units: '0' })
  t.equal((await core.flush()).sent, 2)
  t.equal(kinde.usage('agr_1', 'seats'), '5')
  t.equal(kinde.usage('agr_1', 'storage_gb'), '40')
})

t.test('a level and a sum of features whose codes differ only by a newline and a letter stay two records', async t => {
  const kinde = await emulator(t, { agreements: [{ id: 'agr_1', customerId: 'cus_1', features: ['seats', 'seats\na'] }] })
  const core = coreOn(t, kinde)
  core.set({ agreementId: 'agr_1' }, 'seats', 5)
  core.record({ agreementId: 'agr_1' }, 'seats\na', 2)
  t.equal((await core.flush()).sent, 2)
  t.equal(kinde.usage('agr_1', 'seats'), '5')
  t.equal(kinde.usage('agr_1', 'seats\na'), '2')
})

t.test('a value set in the millisecond of one that failed to send replaces it: the later call wins', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { retry: { attempts: 2, baseDelay: 1, maxDelay: 2 } })
  const at = Date.now()
  kinde.fault({ kind: 'status', status: 503, times: 2 })
  setAt(at, () => core.set({ agreementId: 'agr_1' }, 'seats', 1))
  t.equal((await core.flush()).pending, 1, 'Kinde answered 503 to both attempts: pending again')
  setAt(at, () => core.set({ agreementId: 'agr_1' }, 'seats', 2))
  t.equal((await core.flush()).sent, 1)
  t.same(kinde.records.filter(record => record.applied).map(record => [record.meter_value, record.meter_usage_timestamp]),
    [['2', new Date(at).toISOString()]], 'only the value set last reached Kinde')
})

t.test('in one millisecond a fleet agrees on the latest: a smaller origin never replaces a greater one, one origin\'s later value replaces its earlier', async t => {
  const agg = new Aggregator()
  agg.merge({ entries: [seats('a', 1, 20, { origin: 'b' })], oldest: 20 })
  agg.merge({ entries: [seats('a', 2, 20, { origin: 'a' })], oldest: 20 })
  agg.merge({ entries: [seats('c', 1, 20, { origin: 'x' })], oldest: 20 })
  agg.merge({ entries: [seats('c', 2, 20, { origin: 'x' })], oldest: 20 })
  agg.merge({ entries: [seats('c', 3, 20, { origin: 'x' })], oldest: 20 }, true)
  t.same(agg.drain().entries, [seats('a', 1, 20, { origin: 'b' }), seats('c', 2, 20, { origin: 'x' })])
})

t.test('levels count in the age of the oldest pending usage', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  const base = Date.now() - 60_000
  setAt(base, () => core.set({ agreementId: 'agr_1' }, 'seats', 1))
  setAt(base + 50_000, () => core.set({ agreementId: 'agr_2' }, 'seats', 2))
  const before = Date.now()
  const age = core.stats().oldestPendingAgeMs
  const after = Date.now()
  t.ok(age >= before - base && age <= after - base, `aged from the first value set (${age} ms)`)
})
