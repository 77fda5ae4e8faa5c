/**
 * Shutdown while Kinde throttles: `close()` has one deadline, its `shutdownTimeout`, whatever
 * `flushInterval` is. Every `RateLimit-Reset` pause and retry backoff that ends before it is
 * waited, and only what could not be delivered by then is reported, exactly, with reason `shutdown`.
 */
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import { kindeMetering, type DroppedRecord } from '../../../lib/index.js'
import type { KindeEmulator } from '../../../lib/testing.js'
import { coreOn, emulator, memoryLogger, pluginOptions } from '../../fixtures.js'

const CUSTOMERS = 40
const REQUESTS = 4_000

/** Micros served per "agreement\nfeature", counted by the test as responses succeed. */
type Served = Map<string, number>

function micros (decimal: string): number {
  const [whole, fraction = ''] = decimal.split('.')
  return Number(whole) * 1_000_000 + Number(fraction.padEnd(6, '0'))
}

/** Micros Kinde applied per "agreement\nfeature", from the records the emulator received. */
function applied (kinde: KindeEmulator): Served {
  const totals: Served = new Map()
  for (const record of kinde.records) {
    if (!record.applied) continue
    const key = `${record.customer_agreement_id}\n${record.billing_feature_code}`
    totals.set(key, (totals.get(key) ?? 0) + micros(record.meter_value))
  }
  return totals
}

/** Serves REQUESTS metered requests over CUSTOMERS agreements, two features each; returns what was served. */
async function serve (app: ReturnType<typeof Fastify>): Promise<Served> {
  const served: Served = new Map()
  const add = (agreement: string, feature: string, amount: number): void => {
    const key = `${agreement}\n${feature}`
    served.set(key, (served.get(key) ?? 0) + amount)
  }
  for (let i = 0; i < REQUESTS; i++) {
    const agreement = `agr_${(i * 7) % CUSTOMERS + 1}`
    if (i % 3 === 0) {
      const tokens = (i % 17) + 0.125 // decimals that floats cannot add exactly
      const response = await app.inject({ method: 'POST', url: '/chat', headers: { 'x-agreement': agreement }, payload: { tokens } })
      if (response.statusCode === 200) add(agreement, 'llm_tokens', tokens * 1_000_000)
    } else {
      const response = await app.inject({ url: '/search', headers: { 'x-agreement': agreement } })
      if (response.statusCode === 200) add(agreement, 'searches', 1_000_000)
    }
  }
  return served
}

async function meteredApp (t: Test, kinde: KindeEmulator, flushInterval: number, shutdownTimeout: number,
  onDrop?: (records: DroppedRecord[], reason: string) => void, retry?: { baseDelay: number }): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  t.teardown(() => app.close())
  // By default the default retry policy: backoffs of 200 ms and more, as a user gets it.
  const options = pluginOptions(kinde, { flushInterval, shutdownTimeout, retry, logger: memoryLogger().logger, onDrop })
  await app.register(kindeMetering, options)
  app.get('/search', { config: { meter: 'searches' } }, async () => ({ hits: 1 }))
  app.post('/chat', async (request, reply) => {
    reply.meter('llm_tokens', (request.body as { tokens: number }).tokens)
    return { ok: true }
  })
  return app
}

for (const flushInterval of [200, 1_000]) {
  t.test(`flushInterval ${flushInterval} ms, RateLimit-Reset of 1 to 5 s while close() runs: Kinde's totals equal the served totals`, async t => {
    const kinde = await emulator(t, { customers: CUSTOMERS, seed: flushInterval })
    // Throttled and failing while traffic is served, with flushes on the timer all along.
    kinde.fault({ kind: 'status', status: 429, rateLimitReset: 1, probability: 0.10 })
    kinde.fault({ kind: 'status', status: 503, probability: 0.05 / 0.90 })
    kinde.fault({ kind: 'reset', probability: 0.03 / 0.85 })
    const drops: DroppedRecord[] = []
    const app = await meteredApp(t, kinde, flushInterval, 20_000, records => { drops.push(...records) })
    const served = await serve(app)
    // The close starts under a 5 s pause and meets more 429s of 1 to 3 s, 503s and resets.
    kinde.clearFaults()
    kinde.fault({ kind: 'status', status: 429, rateLimitReset: 5, times: 1 })
    kinde.fault({ kind: 'status', status: 429, rateLimitReset: 1, probability: 0.04 })
    kinde.fault({ kind: 'status', status: 429, rateLimitReset: 3, probability: 0.01 })
    kinde.fault({ kind: 'status', status: 503, probability: 0.05 })
    kinde.fault({ kind: 'reset', probability: 0.03 })
    const closing = Date.now()
    await app.close()
    const closeMs = Date.now() - closing
    const stats = app.metering.stats()

    t.same(drops, [], 'nothing reported dropped')
    t.equal(stats.pending.pairs, 0, 'nothing left pending')
    const kindeTotals = applied(kinde)
    t.same(kindeTotals, served, `Kinde holds exactly the ${served.size} served totals, and nothing for pairs never served`)
    t.equal(served.size, CUSTOMERS * 2, 'every agreement served both features')
    const throttled = kinde.injected.filter(fault => fault.status === 429).length
    t.ok(closeMs >= 5_000, `close waited out the 5 s pause (${closeMs} ms, ${throttled} sends throttled in all)`)
    t.comment(`flushInterval ${flushInterval}: close ${closeMs} ms, ${stats.sent.records} records sent, ${stats.retried} retries`)
  })
}

t.test('Kinde down for the whole close: close() takes the whole shutdownTimeout and reports exactly what remains', async t => {
  const kinde = await emulator(t, { customers: CUSTOMERS })
  const drops: Array<{ record: DroppedRecord, reason: string }> = []
  const shutdownTimeout = 4_000
  const app = await meteredApp(t, kinde, 200, shutdownTimeout, (records, reason) => {
    for (const record of records) drops.push({ record, reason })
  }, { baseDelay: 1_000 }) // backoffs of a second and more: the time left is often shorter than the next one
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  const served = await serve(app)
  const closing = Date.now()
  await app.close()
  const closeMs = Date.now() - closing

  t.ok(closeMs >= shutdownTimeout - 10 && closeMs < shutdownTimeout + 1_000,
    `close kept trying for the whole shutdownTimeout of ${shutdownTimeout} ms (took ${closeMs} ms)`)
  t.ok(kinde.records.length > CUSTOMERS * 2, `sends were retried all along (${kinde.records.length} attempts)`)
  t.same(applied(kinde), new Map(), 'Kinde applied nothing')
  const reported: Served = new Map()
  t.same([...new Set(drops.map(drop => drop.reason))], ['shutdown'], 'every drop has reason shutdown')
  for (const { record } of drops) {
    const key = `${record.agreementId ?? (record.customer as { agreementId: string }).agreementId}\n${record.feature}`
    reported.set(key, (reported.get(key) ?? 0) + micros(record.value))
  }
  t.same(reported, served, `the ${served.size} served totals are reported dropped with reason shutdown, exactly`)
  const stats = app.metering.stats()
  t.equal(stats.dropped.shutdown.records, served.size, 'stats count every record dropped at shutdown')
  t.equal(stats.pending.pairs, 0, 'nothing is left pending after the report')
})

t.test('a RateLimit-Reset that outlasts shutdownTimeout: close() reports at once rather than wait for nothing', async t => {
  const kinde = await emulator(t, { customers: CUSTOMERS })
  const drops: DroppedRecord[] = []
  const app = await meteredApp(t, kinde, 60_000, 2_000, records => { drops.push(...records) })
  await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 30 })
  const closing = Date.now()
  await app.close()
  const closeMs = Date.now() - closing
  t.ok(closeMs < 1_000, `close did not sit out a pause it could not outlive (${closeMs} ms)`)
  t.equal(kinde.calls.meter_usage, 1, 'nothing was sent after the 429')
  t.match(drops, [{ customer: { agreementId: 'agr_1' }, feature: 'searches', value: '1' }], 'the usage is reported dropped')
})

t.test('a close flush that delivers only part of the usage is followed by another at once: the rest reaches Kinde too', async t => {
  const kinde = await emulator(t)
  // One attempt per flush: the pair whose send fails stays pending for the next flush of the close.
  const core = coreOn(t, kinde, { concurrency: 1, retry: { attempts: 1, baseDelay: 60_000, maxDelay: 60_000 }, shutdownTimeout: 10_000 })
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  core.record({ agreementId: 'agr_2' }, 'searches', 3)
  kinde.fault({ kind: 'status', status: 503, times: 1 })
  const started = Date.now()
  const outcome = await core.close()
  t.match(outcome, { sent: 2, dropped: 0 })
  t.same([kinde.usage('agr_1', 'searches'), kinde.usage('agr_2', 'searches')], ['2', '3'], 'both pairs delivered exactly')
  // A flush that made progress is not followed by a backoff (here a minute long): the drain goes on.
  t.ok(Date.now() - started < 30_000, 'no backoff after a flush that delivered something')
})
