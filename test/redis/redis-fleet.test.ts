import t from 'tap'
import { emulator } from '../fixtures.js'
import { startRedisServer, waitFor } from '../helpers/redis-server.js'
import { search, startFleet } from './fleet/instances.js'

const AGREEMENTS = ['agr_1', 'agr_2', 'agr_3', 'agr_4']
const PAIRS = AGREEMENTS.length * 2 // searches and llm_tokens

t.test('three instances send Kinde one record per (customer, feature) per flush, not three', async t => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const kinde = await emulator(t, { customers: AGREEMENTS.length })
  const fleet = await startFleet(3, {
    kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
    redisPort: redis.port,
    flushInterval: 3_600_000, // flushes are driven from here, one round at a time
    syncInterval: 20
  })
  t.teardown(() => Promise.all(fleet.map(instance => instance.kill())))
  t.equal((await fleet[0].flush()).deliveredHere, true, 'the first instance to flush takes the lease')

  const expected = new Map<string, number>()
  for (let round = 1; round <= 2; round++) {
    const before = kinde.records.length
    const requests: Array<Promise<number>> = []
    for (const [i, instance] of fleet.entries()) {
      for (const [a, agreement] of AGREEMENTS.entries()) {
        // A different count per instance, agreement and round, so any loss or double shows.
        const count = 1 + i + a * round
        expected.set(agreement, (expected.get(agreement) ?? 0) + count)
        for (let n = 0; n < count; n++) requests.push(search(instance, agreement))
      }
    }
    t.same(new Set(await Promise.all(requests)), new Set([200]))
    // Each instance merges its sums into Redis within a sync interval.
    await waitFor(async () => (await Promise.all(fleet.map(instance => instance.stats()))).every(({ stats }) => stats.pending.pairs === 0))
    const outcomes = await Promise.all(fleet.map(instance => instance.flush()))
    t.same(outcomes.map(outcome => outcome.deliveredHere), [true, false, false], `round ${round}: only the lease holder delivers`)
    t.equal(kinde.records.length - before, PAIRS, `round ${round}: ${PAIRS} calls for ${PAIRS} pairs, from ${requests.length} requests on 3 instances`)
  }
  for (const [agreement, count] of expected) {
    t.equal(kinde.usage(agreement, 'searches'), String(count), `${agreement} searches`)
    t.equal(kinde.usage(agreement, 'llm_tokens'), String(count / 10), `${agreement} llm_tokens`)
  }
  const served = (await Promise.all(fleet.map(instance => instance.stats()))).map(({ served }) => served)
  t.equal(served.reduce((a, b) => a + b), [...expected.values()].reduce((a, b) => a + b), 'every request served counted once')
  await Promise.all(fleet.map(instance => instance.close()))
})
