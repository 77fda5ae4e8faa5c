/**
 * Thousands of metered requests while Kinde misbehaves, under several flush intervals, token
 * lifetimes and rate-limit resets. What Kinde holds is compared, pair by pair, with what was
 * served, and the difference must be exactly what the emulator's own records say the ambiguous
 * failures explain: under `'retry'` each ambiguous send that Kinde applied is counted once more;
 * under `'drop'` each one it did not apply is missing; nothing else differs.
 */
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import { kindeMetering, type AmbiguousPolicy, type MeteringStats } from '../../../lib/index.js'
import type { FaultSpec, KindeEmulator, ReceivedRecord } from '../../../lib/testing.js'
import { emulator, FEATURES, pluginOptions } from '../../fixtures.js'

const CUSTOMERS = 40
const REQUESTS = 3_000

/** How the app flushes and how long Kinde's answers make it wait. */
interface Timing {
  name: string
  /** 'manual': a flush every 250 requests while traffic goes on; a number: the flush interval in ms. */
  flush: 'manual' | number
  /** Lifetime of the emulator's M2M tokens, in seconds (they are also expired every 1,000 requests). */
  tokenTtlSeconds: number
  /** Seconds in the `RateLimit-Reset` of injected 429s. */
  rateLimitReset: number
}

const TIMINGS: Timing[] = [
  { name: 'manual flushes, 2 s tokens, 5 ms rate-limit resets', flush: 'manual', tokenTtlSeconds: 2, rateLimitReset: 0.005 },
  { name: '40 ms flush interval, 1 s tokens, 30 ms rate-limit resets', flush: 40, tokenTtlSeconds: 1, rateLimitReset: 0.03 }
]

/** Micros served per "agreement\nfeature", counted by the test as responses succeed. */
type Served = Map<string, number>

const pairKey = (agreement: string, feature: string): string => `${agreement}\n${feature}`

/** Serves REQUESTS metered requests over many customers; returns what was served and the final stats. */
async function serveUnderFaults (kinde: KindeEmulator, ambiguous: AmbiguousPolicy, timing: Timing): Promise<{ served: Served, stats: MeteringStats }> {
  const app = Fastify()
  await app.register(kindeMetering, pluginOptions(kinde, {
    ambiguous,
    shutdownTimeout: 60_000,
    retry: { baseDelay: 1, maxDelay: 20 },
    ...(timing.flush === 'manual' ? {} : { flushInterval: timing.flush })
  }))
  app.get('/search', { config: { meter: 'searches' } }, async () => ({ hits: 1 }))
  app.post('/chat', async (request, reply) => {
    reply.meter('llm_tokens', (request.body as { tokens: number }).tokens)
    return { ok: true }
  })
  const served: Served = new Map()
  const serve = (agreement: string, feature: string, micros: number): void => {
    const key = pairKey(agreement, feature)
    served.set(key, (served.get(key) ?? 0) + micros)
  }
  const flushes: Array<Promise<unknown>> = []
  for (let i = 0; i < REQUESTS; i++) {
    const agreement = `agr_${(i * 7) % CUSTOMERS + 1}`
    if (i % 3 === 0) {
      const tokens = (i % 17) + 0.125 // decimals that floats cannot add exactly
      const response = await app.inject({ method: 'POST', url: '/chat', headers: { 'x-agreement': agreement }, payload: { tokens } })
      if (response.statusCode === 200) serve(agreement, 'llm_tokens', tokens * 1_000_000)
    } else {
      const response = await app.inject({ url: '/search', headers: { 'x-agreement': agreement } })
      if (response.statusCode === 200) serve(agreement, 'searches', 1_000_000)
    }
    if (timing.flush === 'manual' && i % 250 === 249) flushes.push(app.metering.flush()) // flush while traffic goes on
    if (i % 1_000 === 999) kinde.expireTokens() // and tokens expire under it
  }
  await Promise.all(flushes)
  await app.close()
  return { served, stats: app.metering.stats() }
}

function micros (decimal: string): number {
  const [whole, fraction = ''] = decimal.split('.')
  return Number(whole) * 1_000_000 + Number(fraction.padEnd(6, '0'))
}

/** 500, 504 and a connection cut after Kinde read the body: the client cannot know whether it was applied. */
const isAmbiguous = (record: ReceivedRecord): boolean => record.status === 500 || record.status === 504 || record.status === 0

/** Sums of meter values per pair over the records that match. */
function sumPerPair (records: ReceivedRecord[], match: (record: ReceivedRecord) => boolean): Map<string, number> {
  const sums = new Map<string, number>()
  for (const record of records) {
    if (!match(record)) continue
    const key = pairKey(record.customer_agreement_id, record.billing_feature_code)
    sums.set(key, (sums.get(key) ?? 0) + micros(record.meter_value))
  }
  return sums
}

const total = (sums: Map<string, number>): number => [...sums.values()].reduce((sum, value) => sum + value, 0)

/**
 * Checks every (agreement, feature) the emulator knows: Kinde holds served + `extra` − `missing`
 * for served pairs, and nothing (not even a send) for pairs never served.
 */
function assertLedger (t: Test, kinde: KindeEmulator, served: Served, extra: Map<string, number>, missing: Map<string, number>): void {
  const sentPairs = new Set(kinde.records.map(record => pairKey(record.customer_agreement_id, record.billing_feature_code)))
  const wrong: string[] = []
  let checked = 0
  for (let n = 1; n <= CUSTOMERS; n++) {
    for (const feature of FEATURES) {
      const key = pairKey(`agr_${n}`, feature)
      const held = micros(kinde.usage(`agr_${n}`, feature))
      const expected = (served.get(key) ?? 0) + (extra.get(key) ?? 0) - (missing.get(key) ?? 0)
      if (held !== expected) wrong.push(`agr_${n} ${feature}: Kinde ${held / 1e6}, expected ${expected / 1e6}`)
      if (!served.has(key) && sentPairs.has(key)) wrong.push(`agr_${n} ${feature}: sent to Kinde but never served`)
      checked++
    }
  }
  t.same(wrong, [], `all ${checked} (agreement, feature) totals as the records explain them`)
}

/** Counts that must match between the client's stats and what the emulator received. */
function assertCounts (t: Test, kinde: KindeEmulator, stats: MeteringStats): void {
  const records = kinde.records
  const accepted = records.filter(record => record.status >= 200 && record.status < 300)
  t.equal(stats.sent.records, accepted.length, 'every record Kinde accepted is counted sent, once')
  t.equal(micros(stats.sent.units), total(sumPerPair(accepted, () => true)), 'sent units are the accepted units')
  t.equal(stats.failures.ambiguous, records.filter(isAmbiguous).length, 'every 500, 504 and cut connection counted ambiguous')
  t.equal(stats.failures.notApplied, records.filter(record => record.status === 429 || record.status === 503).length, 'every 429 and 503 counted not applied')
  t.equal(stats.pending.pairs, 0, 'nothing left pending after close')
  t.equal(stats.dropped.shutdown.records, 0, 'nothing dropped at shutdown')
  t.equal(stats.dropped.rejected.records, 0, 'nothing rejected')
}

function addFaults (kinde: KindeEmulator, faults: FaultSpec[]): void {
  for (const fault of faults) kinde.fault(fault)
}

/** Faults Kinde applies nothing under; the client knows it for 429 and 503, not for resets. */
const unapplied = (timing: Timing): FaultSpec[] => [
  { kind: 'status', status: 429, rateLimitReset: timing.rateLimitReset, probability: 0.10 },
  { kind: 'status', status: 503, probability: 0.05 / 0.90 },
  // The emulator resets after reading the body, so the client rightly counts these as ambiguous.
  { kind: 'reset', probability: 0.03 / 0.85 }
]

for (const timing of TIMINGS) {
  t.test(`${timing.name}: 10% 429, 5% 503, 3% resets before applying: Kinde totals equal served totals exactly`, async t => {
    const kinde = await emulator(t, { customers: CUSTOMERS, seed: 42, tokenTtlSeconds: timing.tokenTtlSeconds })
    addFaults(kinde, unapplied(timing))
    const { served, stats } = await serveUnderFaults(kinde, 'retry', timing)
    t.equal(served.size, CUSTOMERS * 2, 'every customer was served both features')
    assertLedger(t, kinde, served, new Map(), new Map())
    assertCounts(t, kinde, stats)
    const statuses = new Set(kinde.injected.map(fault => fault.status ?? fault.kind))
    t.same([...statuses].sort(), [429, 503, 'reset'].sort(), 'every kind of fault struck')
    t.notOk(kinde.injected.some(fault => fault.applied), 'none of them applied anything')
    t.ok(stats.retried > 0 && stats.failures.ambiguous > 0, `faults were met and retried (${JSON.stringify(stats.failures)})`)
  })

  for (const policy of ['retry', 'drop'] as const) {
    t.test(`${timing.name}: ambiguous faults under '${policy}': Kinde differs from served by exactly the ambiguous sends ${policy === 'retry' ? 'it applied' : 'it did not apply'}`, async t => {
      const kinde = await emulator(t, { customers: CUSTOMERS, seed: 7, tokenTtlSeconds: timing.tokenTtlSeconds })
      addFaults(kinde, [
        ...unapplied(timing),
        { kind: 'status', status: 500, apply: true, probability: 0.03 },
        { kind: 'reset', apply: true, probability: 0.02 },
        { kind: 'status', status: 504, probability: 0.02 }
      ])
      const { served, stats } = await serveUnderFaults(kinde, policy, timing)
      const applied = sumPerPair(kinde.records, record => isAmbiguous(record) && record.applied)
      const notApplied = sumPerPair(kinde.records, record => isAmbiguous(record) && !record.applied)
      t.ok(applied.size > 0 && notApplied.size > 0, `ambiguous sends struck, applied (${total(applied) / 1e6}) and not (${total(notApplied) / 1e6})`)
      if (policy === 'retry') {
        // At least once: every ambiguous send is retried, so what Kinde applied of them is counted twice.
        assertLedger(t, kinde, served, applied, new Map())
        t.equal(stats.dropped.ambiguous.records, 0, 'nothing dropped as ambiguous')
      } else {
        // At most once: every ambiguous send is dropped, so what Kinde did not apply of them is missing.
        assertLedger(t, kinde, served, new Map(), notApplied)
        t.equal(micros(stats.dropped.ambiguous.units), total(applied) + total(notApplied), 'every ambiguous send reported dropped, applied or not')
      }
      assertCounts(t, kinde, stats)
    })
  }
}
