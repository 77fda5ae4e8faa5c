/**
 * Absolute values in the Redis store, in this process against a real redis-server: merged latest
 * per pair across instances, in the scripts' own order (time, then origin, then put-back), and
 * delivered as one absolute record beside exact sums.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { Metering, type DroppedRecord, type Logger } from '../../lib/index.js'
import { redisStore } from '../../lib/redis.js'
import { MERGE_BATCH, runScript, SETTLE, type ScriptClient } from '../../lib/redis/scripts.js'
import type { KindeEmulator } from '../../lib/testing.js'
import { coreOn, emulator, memoryLogger } from '../fixtures.js'
import { startRedisServer, waitFor } from '../helpers/redis-server.js'

const server = await startRedisServer()
t.teardown(() => server.stop())

let prefixes = 0

function connect (t: Test): Redis {
  const client = new Redis({ host: '127.0.0.1', port: server.port })
  t.teardown(() => { client.disconnect() })
  return client
}

/** One instance of a fleet on the emulator, with its own client and store; closed at teardown. */
function member (t: Test, kinde: KindeEmulator, prefix: string, logger: Logger = memoryLogger().logger): Metering {
  return coreOn(t, kinde, { logger, store: redisStore({ client: connect(t), prefix, syncInterval: 3_600_000 }) })
}

t.test('values set on two instances: the latest reaches Kinde as one absolute record, sums beside it exact', async t => {
  const kinde = await emulator(t)
  const prefix = `{absolute${++prefixes}}:`
  const a = member(t, kinde, prefix)
  const b = member(t, kinde, prefix)
  t.equal((await a.flush()).deliveredHere, true, 'the first to flush takes the lease')
  a.set({ agreementId: 'agr_1' }, 'seats', 3)
  a.record({ agreementId: 'agr_1' }, 'searches', 2)
  await a.flush()
  b.set({ agreementId: 'agr_1' }, 'seats', 5)
  b.set({ agreementId: 'agr_2' }, 'storage_gb', 1e22) // beyond 2^53 micros
  b.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.same(b.stats().pending, { pairs: 3, units: '1' }, 'levels are pending pairs, not units')
  t.equal((await b.flush()).deliveredHere, false, 'the other only merges')
  t.equal((await a.flush()).sent, 3)
  t.equal(kinde.usage('agr_1', 'seats'), '5')
  t.equal(kinde.usage('agr_2', 'storage_gb'), '10000000000000000000000')
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.same(kinde.records.filter(record => record.billing_feature_code !== 'searches').map(record => record.meter_type_code), ['absolute', 'absolute', 'absolute'])
})

t.test('a value failing to send while another instance sets a newer one: the newer one reaches Kinde', async t => {
  const kinde = await emulator(t)
  const prefix = `{absolute${++prefixes}}:`
  let throttled!: () => void
  const firstThrottle = new Promise<void>(resolve => { throttled = resolve })
  const logger = memoryLogger().logger
  logger.warn = (obj: object, msg?: string) => { if (msg?.includes('did not apply') === true) throttled() }
  const a = member(t, kinde, prefix, logger)
  const b = member(t, kinde, prefix)
  await a.flush()
  // Every attempt of the flush is throttled, each for long enough that b's merge lands meanwhile.
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.2, times: 4 })
  a.set({ agreementId: 'agr_1' }, 'seats', 1)
  const failing = a.flush()
  await firstThrottle
  b.set({ agreementId: 'agr_1' }, 'seats', 2)
  await b.flush()
  t.equal((await failing).pending, 1, 'the older value failed and was put back')
  await a.flush()
  t.same(kinde.records.filter(record => record.applied).map(record => record.meter_value), ['2'])
  t.equal(kinde.usage('agr_1', 'seats'), '2')
})

t.test('the merge scripts order values by time, then origin, and never put an older one back over a newer', async t => {
  const client = connect(t)
  const prefix = `{absolute${++prefixes}}:`
  // The package reads an ioredis client through this narrow view, as lib/redis.ts does.
  const scripts = client as unknown as ScriptClient
  const live = `${prefix}live`
  const pair = JSON.stringify([0, 'agr_1', 'seats'])
  let batch = 0
  const merge = (value: string): Promise<unknown> =>
    runScript(scripts, MERGE_BATCH, [live, `${prefix}seen:x`], [++batch, 60_000, 1000, pair, 'a', value, value.split(' ')[0]])
  const held = async (): Promise<string | null> => await client.hget(live, `a${pair}`)

  await merge('1000 b 5000000')
  await merge('1000 a 7000000')
  t.equal(await held(), '1000 b 5000000', 'same millisecond, lesser origin: not later')
  await merge('1000 b 9000000')
  t.equal(await held(), '1000 b 9000000', 'same millisecond and origin: merged last wins')
  await merge('999 c 1000000')
  t.equal(await held(), '1000 b 9000000', 'earlier: never replaces')

  // A take owning snapshot 1, which still holds the value, puts back what it failed to send.
  const putBack = async (number: string, value: string): Promise<void> => {
    const snapshot = `${prefix}snapshot:${number}`
    await client.hset(`${prefix}inflight`, number, `take-${number}`)
    await client.hset(snapshot, `a${pair}`, value)
    await runScript(scripts, SETTLE, [`${prefix}inflight`, live, snapshot], [`take-${number}`, 1000, '1', number, pair, 'a', value, value.split(' ')[0]])
  }
  await putBack('1', '1000 b 3000000')
  t.equal(await held(), '1000 b 9000000', 'put back from the same origin and millisecond: the value set since stays')
  await putBack('2', '2000 a 4000000')
  t.equal(await held(), '2000 a 4000000', 'put back and later: it is the latest')
  t.equal(await client.hget(live, `l${pair}`), null, 'no sum is touched')
})

t.test("under ambiguous: 'drop' a level a dead leader took is delivered by its successor; only sums are reported", async t => {
  const kinde = await emulator(t)
  const prefix = `{absolute${++prefixes}}:`
  const dropped: DroppedRecord[] = []
  const deadClient = connect(t)
  const dead = redisStore({ client: deadClient, prefix, syncInterval: 3_600_000, leaseTtl: 200 })
  dead.attach({ logger: memoryLogger().logger, ambiguous: 'retry', drop: () => {} })
  const at = Date.now()
  await dead.add({
    entries: [
      { kind: 0, id: 'agr_1', feature: 'seats', micros: 7_000_000, at, absolute: true },
      { kind: 0, id: 'agr_1', feature: 'searches', micros: 2_000_000, at }
    ],
    oldest: at
  })
  t.equal((await dead.take())?.entries.length, 2, 'taken, then never settled: the instance died')
  deadClient.disconnect()
  const successor = new Metering({
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    flushInterval: 3_600_000,
    logger: memoryLogger().logger,
    ambiguous: 'drop',
    onDrop: records => { dropped.push(...records) },
    store: redisStore({ client: connect(t), prefix, syncInterval: 3_600_000, leaseTtl: 200 })
  })
  t.teardown(() => successor.close())
  await waitFor(async () => (await successor.flush()).deliveredHere)
  await successor.flush()
  t.equal(kinde.usage('agr_1', 'seats'), '7')
  t.equal(kinde.usage('agr_1', 'searches'), '0')
  t.match(dropped, [{ customer: { agreementId: 'agr_1' }, feature: 'searches', value: '2' }])
  t.equal(dropped.length, 1)
})
