/**
 * Thousands of metered requests while Kinde misbehaves: the totals Kinde records must equal the
 * totals served, exactly, or differ by no more than the ambiguous failures allow.
 */
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import { kindeMetering, type AmbiguousPolicy } from '../lib/index.js'
import type { FaultSpec, KindeEmulator } from '../lib/testing.js'
import { emulator, pluginOptions } from './fixtures.js'

const CUSTOMERS = 40
const REQUESTS = 3_000

/** Micros served per "agreement\nfeature", counted by the test itself as responses succeed. */
type Served = Map<string, number>

/** Serves REQUESTS metered requests over many customers, flushing as it goes; returns what was served. */
async function serveUnderFaults (t: Test, kinde: KindeEmulator, ambiguous: AmbiguousPolicy): Promise<Served> {
  const app = Fastify()
  await app.register(kindeMetering, pluginOptions(kinde, { ambiguous, shutdownTimeout: 60_000, retry: { baseDelay: 1, maxDelay: 20 } }))
  app.get('/search', { config: { meter: 'searches' } }, async () => ({ hits: 1 }))
  app.post('/chat', async (request, reply) => {
    reply.meter('llm_tokens', (request.body as { tokens: number }).tokens)
    return { ok: true }
  })
  const served: Served = new Map()
  const serve = (agreement: string, feature: string, micros: number): void => {
    const key = `${agreement}\n${feature}`
    served.set(key, (served.get(key) ?? 0) + micros)
  }
  const flushes: Array<Promise<unknown>> = []
  for (let i = 0; i < REQUESTS; i++) {
    const agreement = `agr_${(i * 7) % CUSTOMERS + 1}`
    if (i % 3 === 0) {
      const tokens = (i % 17) + 0.125 // decimals that floats cannot add exactly
      await app.inject({ method: 'POST', url: '/chat', headers: { 'x-agreement': agreement }, payload: { tokens } })
      serve(agreement, 'llm_tokens', tokens * 1_000_000)
    } else {
      await app.inject({ url: '/search', headers: { 'x-agreement': agreement } })
      serve(agreement, 'searches', 1_000_000)
    }
    if (i % 250 === 249) flushes.push(app.metering.flush()) // flush while traffic goes on
    if (i % 1_000 === 999) kinde.expireTokens() // and tokens expire under it
  }
  await Promise.all(flushes)
  await app.close()
  const stats = app.metering.stats()
  t.equal(stats.pending.keys, 0, 'nothing left pending after close')
  t.ok(stats.failures.notApplied > 0 && stats.retried > 0, `faults were met and retried (${JSON.stringify(stats.failures)})`)
  return served
}

function micros (decimal: string): number {
  const [whole, fraction = ''] = decimal.split('.')
  return Number(whole) * 1_000_000 + Number(fraction.padEnd(6, '0'))
}

function addFaults (kinde: KindeEmulator, faults: FaultSpec[]): void {
  for (const fault of faults) kinde.fault(fault)
}

const NOT_APPLIED: FaultSpec[] = [
  { kind: 'status', status: 429, rateLimitReset: 0.005, probability: 0.10 },
  { kind: 'status', status: 503, probability: 0.05 / 0.90 },
  { kind: 'reset', probability: 0.03 / 0.85 }
]

t.test('10% 429, 5% 503, 3% resets before applying, expiring tokens: Kinde totals equal served totals exactly', async t => {
  const kinde = await emulator(t, { customers: CUSTOMERS, seed: 42, tokenTtlSeconds: 2 })
  addFaults(kinde, NOT_APPLIED)
  const served = await serveUnderFaults(t, kinde, 'retry')
  let pairs = 0
  for (const [key, expected] of served) {
    const [agreement, feature] = key.split('\n')
    if (micros(kinde.usage(agreement, feature)) !== expected) t.fail(`${agreement} ${feature}: Kinde ${kinde.usage(agreement, feature)}, served ${expected / 1e6}`)
    pairs++
  }
  t.equal(pairs, CUSTOMERS * 2)
  t.pass(`all ${pairs} (agreement, feature) totals exact`)
  const statuses = new Set(kinde.injected.map(fault => fault.status ?? fault.kind))
  t.ok(statuses.has(429) && statuses.has(503) && statuses.has('reset'), 'every kind of fault struck')
})

for (const policy of ['retry', 'drop'] as const) {
  t.test(`ambiguous faults under '${policy}': the difference stays within the ambiguous failures`, async t => {
    const kinde = await emulator(t, { customers: CUSTOMERS, seed: 7 })
    addFaults(kinde, [
      ...NOT_APPLIED,
      { kind: 'status', status: 500, apply: true, probability: 0.03 },
      { kind: 'reset', apply: true, probability: 0.02 },
      { kind: 'status', status: 504, probability: 0.02 }
    ])
    const served = await serveUnderFaults(t, kinde, policy)
    let servedTotal = 0
    let recordedTotal = 0
    for (const [key, expected] of served) {
      const [agreement, feature] = key.split('\n')
      servedTotal += expected
      recordedTotal += micros(kinde.usage(agreement, feature))
    }
    // The ambiguous failures as Kinde saw them: answered 500/504 or cut off, applied or not.
    const ambiguous = kinde.records.filter(record => record.status === 500 || record.status === 504 || (record.status === 0))
    const appliedMicros = ambiguous.filter(record => record.applied).reduce((sum, record) => sum + micros(record.meter_value), 0)
    const unappliedMicros = ambiguous.filter(record => !record.applied).reduce((sum, record) => sum + micros(record.meter_value), 0)
    t.ok(ambiguous.length > 0, `${ambiguous.length} ambiguous failures struck`)
    if (policy === 'retry') {
      t.ok(recordedTotal >= servedTotal, 'at-least-once: nothing lost')
      t.ok(recordedTotal - servedTotal <= appliedMicros, `over-count ${(recordedTotal - servedTotal) / 1e6} ≤ applied ambiguous ${appliedMicros / 1e6}`)
    } else {
      t.ok(recordedTotal <= servedTotal, 'at-most-once: nothing counted twice')
      t.ok(servedTotal - recordedTotal <= unappliedMicros + appliedMicros, `under-count ${(servedTotal - recordedTotal) / 1e6} ≤ ambiguous ${(unappliedMicros + appliedMicros) / 1e6}`)
    }
  })
}
