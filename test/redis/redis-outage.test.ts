import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { kindeMetering, Metering, type DroppedRecord, type DropReason, type MeteringOptions } from '../../lib/index.js'
import { redisStore, type RedisStoreOptions } from '../../lib/redis.js'
import type { KindeEmulator } from '../../lib/testing.js'
import { emulator, memoryLogger, pluginOptions } from '../fixtures.js'
import { startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.js'

/** A redis-server of the test's own, stopped at teardown, and a client of it. */
async function redis (t: Test): Promise<{ server: RedisServer, client: Redis }> {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const client = new Redis({ host: '127.0.0.1', port: server.port })
  // As @fastify/redis does: connection errors are reported through commands, not as crashes.
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return { server, client }
}

function metered (t: Test, kinde: KindeEmulator, client: Redis, storeOptions: Partial<RedisStoreOptions>, options: Partial<MeteringOptions> = {}) {
  const { entries, logger } = memoryLogger()
  const dropped: Array<{ reason: DropReason, records: DroppedRecord[] }> = []
  const store = redisStore({ client, timeout: 100, ...storeOptions })
  const metering = new Metering({
    ...pluginOptions(kinde),
    customer: undefined,
    logger,
    onDrop: (records, reason) => { dropped.push({ reason, records }) },
    store,
    ...options
  })
  t.teardown(() => metering.close())
  return { metering, store, logs: entries, dropped }
}

t.test('Redis down, then back: requests never fail, usage waits in memory and is merged when Redis returns', async t => {
  const kinde = await emulator(t)
  const { server, client } = await redis(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde, { store: redisStore({ client, syncInterval: 20, timeout: 100 }) }))
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  t.equal((await app.metering.flush()).sent, 1)

  await server.stop()
  for (let i = 0; i < 5; i++) {
    const response = await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
    t.equal(response.statusCode, 200)
  }
  const down = await app.metering.flush()
  t.equal(down.deliveredHere, false)
  t.notOk(down.error, 'the flush itself does not fail')
  t.equal(app.metering.stats().pending.units, '5', 'kept in this instance')

  await server.start()
  await waitFor(async () => {
    await app.metering.flush()
    return kinde.usage('agr_1', 'searches') === '6' && app.metering.stats().pending.pairs === 0
  }, 10_000)
  t.equal(kinde.records.length, 2)
  t.equal(entries.filter(entry => entry.level === 'error' && /Redis is unavailable/.test(entry.msg ?? '')).length, 1, 'logged once')
  t.equal(entries.filter(entry => entry.level === 'info' && /Redis answers again/.test(entry.msg ?? '')).length, 1)
})

t.test('while Redis is down, what an instance keeps is bounded by maxPendingPairs', async t => {
  const kinde = await emulator(t)
  const { server, client } = await redis(t)
  const { metering, store, dropped } = metered(t, kinde, client, { syncInterval: 10 }, { maxPendingPairs: 3 })
  await metering.flush()
  await server.stop()
  for (let i = 1; i <= 3; i++) metering.record({ agreementId: `agr_${i}` }, 'searches', i)
  // Once a sync found Redis down, the three pairs it kept leave no room for new ones.
  await waitFor(() => !store.isAvailable && store.pending().pairs === 3)
  metering.record({ agreementId: 'agr_1' }, 'renders', 1)
  await metering.flush()
  t.equal(metering.stats().dropped.overflow.records, 1, 'a new pair beyond the bound is reported')
  t.same(dropped.map(drop => [drop.reason, drop.records[0].feature]), [['overflow', 'renders']])

  await server.start()
  await waitFor(async () => (await metering.flush()).sent === 3, 10_000)
  t.equal(kinde.usage('agr_3', 'searches'), '3')
})

t.test('closing while Redis is down reports what Redis never confirmed', async t => {
  const kinde = await emulator(t)
  const { server, client } = await redis(t)
  const { metering, dropped } = metered(t, kinde, client, {})
  await metering.flush()
  await server.stop()
  for (let i = 1; i <= 1500; i++) metering.record({ agreementId: `agr_${i}` }, 'searches', 1)
  await metering.flush() // sends the first thousand pairs, which time out
  metering.record({ agreementId: 'agr_1' }, 'renders', 2)
  const closed = await metering.close()
  t.same(closed, { sent: 0, dropped: 1501, droppedByReason: { rejected: 0, ambiguous: 1000, no_agreement: 0, overflow: 0, shutdown: 501 } },
    'the close outcome counts what the store reported dropped during the close, as onDrop received it')
  t.same(dropped.map(drop => [drop.reason, drop.records.length]), [['ambiguous', 1000], ['shutdown', 501]])
  t.match(dropped[0].records[0], { value: '1', error: { message: /did not confirm/ } })
  t.equal(metering.stats().dropped.shutdown.units, '502')
})

t.test('Redis stalls mid-flush: the leader delivers, keeps what to put back, and settles once Redis answers', async t => {
  const kinde = await emulator(t)
  const { server, client } = await redis(t)
  const { metering, logs } = metered(t, kinde, client, {}, { concurrency: 1, retry: { attempts: 1, baseDelay: 1 } })
  await metering.flush()
  for (let i = 1; i <= 3; i++) metering.record({ agreementId: `agr_${i}` }, 'searches', i)
  kinde.fault({ kind: 'delay', delayMs: 300 })
  kinde.fault({ kind: 'status', status: 503 })
  const flushing = metering.flush()
  await waitFor(() => kinde.records.length === 1)
  await server.pause(2000)
  const outcome = await flushing
  t.equal(outcome.sent, 2)
  t.equal(outcome.pending, 1)
  t.equal(metering.stats().pending.pairs, 1, 'what to put back stays counted until Redis has it')
  await waitFor(async () => (await metering.flush()).sent === 1, 5_000)
  t.equal(kinde.records.filter(record => record.status === 200).length, 3)
  for (let i = 1; i <= 3; i++) t.equal(kinde.usage(`agr_${i}`, 'searches'), String(i))
  t.notOk(logs.some(entry => /another instance took over/.test(entry.msg ?? '')), 'its own late settle is no takeover')
  t.equal((await metering.flush()).sent, 0)
})
