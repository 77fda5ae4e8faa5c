/**
 * Absolute meters across a fleet: three instances set seats through one Redis store while Kinde
 * answers 429, 503 and resets; Kinde ends with the last value set for every agreement, and the
 * searches metered beside them are exact.
 */
import t from 'tap'
import { emulator } from '../fixtures.js'
import { startRedisServer, waitFor } from '../helpers/redis-server.js'
import { search, setSeats, startFleet, type Instance } from './fleet/instances.js'

const AGREEMENTS = ['agr_1', 'agr_2', 'agr_3']

async function synced (fleet: Instance[]): Promise<void> {
  await waitFor(async () => (await Promise.all(fleet.map(instance => instance.stats()))).every(({ stats }) => stats.pending.pairs === 0))
}

t.test('three instances set values through Redis during faulty flushes: Kinde ends with the last value set', async t => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const kinde = await emulator(t, { customers: AGREEMENTS.length, seed: 7 })
  const fleet = await startFleet(3, {
    kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
    redisPort: redis.port,
    flushInterval: 3_600_000, // flushes are driven from here
    syncInterval: 20
  })
  t.teardown(() => Promise.all(fleet.map(instance => instance.kill())))
  t.equal((await fleet[0].flush()).deliveredHere, true, 'the first instance to flush takes the lease')
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.001, probability: 0.2 })
  kinde.fault({ kind: 'status', status: 503, probability: 0.2 })
  kinde.fault({ kind: 'reset', probability: 0.2 })

  const last = new Map<string, number>()
  const searches = new Map<string, number>()
  let value = 0
  for (let round = 1; round <= 6; round++) {
    // Every instance sets several values for every agreement at once, and serves searches.
    const requests: Array<Promise<number>> = []
    for (const instance of fleet) {
      for (const agreement of AGREEMENTS) {
        for (let n = 0; n < 3; n++) requests.push(setSeats(instance, agreement, 1 + Math.floor(Math.random() * 500)))
        requests.push(search(instance, agreement))
        searches.set(agreement, (searches.get(agreement) ?? 0) + 1)
      }
    }
    t.same(new Set(await Promise.all(requests)), new Set([200]))
    await synced(fleet)
    // Then, while the leader flushes (and faults make it put records back), one last value per
    // agreement from one instance: later than all of the above, which waited for the sync.
    const flushing = Promise.all(fleet.map(instance => instance.flush()))
    for (const agreement of AGREEMENTS) {
      const final = 1000 + ++value
      t.equal(await setSeats(fleet[(round + value) % fleet.length], agreement, final), 200)
      last.set(agreement, final)
    }
    await flushing
    await synced(fleet)
    await Promise.all(fleet.map(instance => instance.flush()))
  }
  t.ok(kinde.injected.length > 0, `faults struck (${kinde.injected.length})`)
  kinde.clearFaults()
  await Promise.all(fleet.map(instance => instance.flush()))
  for (const agreement of AGREEMENTS) {
    t.equal(kinde.usage(agreement, 'seats'), String(last.get(agreement)), `${agreement}: the last value set`)
    t.equal(kinde.usage(agreement, 'searches'), String(searches.get(agreement)), `${agreement}: every search once`)
  }
  const absolute = kinde.records.filter(record => record.billing_feature_code === 'seats')
  t.ok(absolute.every(record => record.meter_type_code === 'absolute'), 'seats are sent as absolute')
  await Promise.all(fleet.map(instance => instance.close()))
})
