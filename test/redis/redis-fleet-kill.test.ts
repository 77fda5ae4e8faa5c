import t from 'tap'
import { Redis } from 'ioredis'
import { emulator } from '../fixtures.js'
import { startRedisServer, waitFor } from '../helpers/redis-server.js'
import { search, startFleet, type Instance } from './fleet/instances.js'

const AGREEMENTS = Array.from({ length: 12 }, (_, i) => `agr_${i + 1}`)
const CONCURRENCY = 2

t.test('the lease holder killed mid-flush: nothing is lost, and only what it had in flight counts twice', async t => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const admin = new Redis({ host: '127.0.0.1', port: redis.port })
  t.teardown(() => { admin.disconnect() })
  const kinde = await emulator(t, { customers: AGREEMENTS.length })
  // Kinde applies each record at once and answers 150 ms later: a flush of 24 records two at a
  // time lasts about 1.8 s, and records in flight when the leader dies were applied.
  kinde.fault({ kind: 'delay', delayMs: 150, apply: true, probability: 1 })
  const fleet = await startFleet(3, {
    kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
    redisPort: redis.port,
    prefix: 'kill:',
    flushInterval: 200,
    syncInterval: 20,
    leaseTtl: 600,
    concurrency: CONCURRENCY
  })
  t.teardown(() => Promise.all(fleet.map(instance => instance.kill())))

  const expected = new Map<string, number>()
  const traffic = async (instances: Instance[], perInstance: number): Promise<void> => {
    const requests: Array<Promise<number>> = []
    for (const instance of instances) {
      for (const agreement of AGREEMENTS) {
        expected.set(agreement, (expected.get(agreement) ?? 0) + perInstance)
        for (let n = 0; n < perInstance; n++) requests.push(search(instance, agreement))
      }
    }
    t.same(new Set(await Promise.all(requests)), new Set([200]), 'every request served')
  }
  await traffic(fleet, 3)
  // Everything recorded is in Redis: the leader's death may only lose what it had not merged.
  await waitFor(async () => (await Promise.all(fleet.map(instance => instance.stats()))).every(({ stats }) => stats.pending.pairs === 0))
  await waitFor(() => kinde.records.length >= 4, 10_000) // a flush is delivering
  const leaders = []
  for (const instance of fleet) if ((await instance.stats()).leader) leaders.push(instance)
  t.equal(leaders.length, 1, 'one lease holder')
  const [leader] = leaders
  await leader.kill()
  const survivors = fleet.filter(instance => instance !== leader)
  const atKill = kinde.records.length
  t.ok(atKill < AGREEMENTS.length * 2, 'killed before its flush finished')

  await traffic(survivors, 2) // the fleet keeps serving and metering
  const settled = async (): Promise<boolean> => {
    const stats = await Promise.all(survivors.map(instance => instance.stats()))
    return stats.every(({ stats }) => stats.pending.pairs === 0 && stats.inFlight === 0) &&
      await admin.exists('kill:live', 'kill:inflight') === 0 &&
      AGREEMENTS.every(agreement => Number(kinde.usage(agreement, 'searches')) >= expected.get(agreement)!)
  }
  await waitFor(settled, 15_000)
  t.equal((await Promise.all(survivors.map(instance => instance.stats()))).filter(({ leader }) => leader).length, 1, 'a survivor took over')

  let twice = 0
  for (const agreement of AGREEMENTS) {
    const searches = Number(kinde.usage(agreement, 'searches'))
    const tokens = Number(kinde.usage(agreement, 'llm_tokens'))
    const count = expected.get(agreement)!
    t.ok(searches >= count && tokens >= count / 10 - 1e-9, `${agreement}: nothing lost`)
    if (searches > count) twice++
    if (tokens > count / 10 + 1e-9) twice++
  }
  t.ok(twice <= CONCURRENCY, `records counted twice (${twice}) at most the ${CONCURRENCY} the dead leader had in flight`)
  t.comment(`records at kill: ${atKill}; total records: ${kinde.records.length}; counted twice: ${twice}`)
  await Promise.all(survivors.map(instance => instance.close()))
})
