import t, { type Test } from 'tap'
import { Redis, type RedisOptions } from 'ioredis'
import { addMicros, formatMicros, Metering, toMicros, type MeteringOptions } from '../../lib/index.js'
import { redisStore, type RedisStore, type RedisStoreOptions } from '../../lib/redis.js'
import type { KindeEmulator } from '../../lib/testing.js'
import { emulator, memoryLogger } from '../fixtures.js'
import { startRedisServer, waitFor } from '../helpers/redis-server.js'

const server = await startRedisServer()
t.teardown(() => server.stop())

let prefixes = 0

/** An ioredis client of the test's redis-server, disconnected at teardown. */
function connect (t: Test, options: RedisOptions = {}): Redis {
  const client = new Redis({ host: '127.0.0.1', port: server.port, ...options })
  t.teardown(() => { client.disconnect() })
  return client
}

interface Member {
  metering: Metering
  store: RedisStore
  client: Redis
  logs: ReturnType<typeof memoryLogger>['entries']
}

/** One instance of a fleet: its own client, store and core, on the emulator; closed at teardown. */
function member (t: Test, kinde: KindeEmulator, prefix: string, options: {
  store?: Partial<RedisStoreOptions>, metering?: Partial<MeteringOptions>, client?: RedisOptions
} = {}): Member {
  const client = connect(t, options.client)
  const store = redisStore({ client, prefix, syncInterval: 3_600_000, ...options.store })
  const { entries, logger } = memoryLogger()
  const metering = new Metering({
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    flushInterval: 3_600_000,
    retry: { baseDelay: 1, maxDelay: 5 },
    logger,
    store,
    ...options.metering
  })
  t.teardown(() => metering.close())
  return { metering, store, client, logs: entries }
}

function freshPrefix (): string {
  return `{test${++prefixes}}:`
}

t.test('sums from several instances merge exactly, decimals and huge values included', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix)
  const b = member(t, kinde, prefix)
  t.equal((await a.metering.flush()).deliveredHere, true, 'the first to flush takes the lease')
  for (let i = 0; i < 100; i++) {
    a.metering.record({ agreementId: 'agr_1' }, 'llm_tokens', 0.1)
    b.metering.record({ agreementId: 'agr_1' }, 'llm_tokens', 0.2)
  }
  // Beyond 2^53 micros, and beyond the 10^12-micros low part many times over.
  a.metering.record({ agreementId: 'agr_2' }, 'egress_bytes', 9_000_000_000)
  b.metering.record({ agreementId: 'agr_2' }, 'egress_bytes', 9_000_000_000.5)
  a.metering.record({ agreementId: 'agr_3' }, 'cpu_ms', 1e22)
  b.metering.record({ agreementId: 'agr_3' }, 'cpu_ms', 999_999.999999)
  b.metering.record({ agreementId: 'agr_3' }, 'cpu_ms', 0.000001)
  a.metering.record({ agreementId: 'agr_1' }, 'renders', 1_000_000.5)
  b.metering.record({ agreementId: 'agr_1' }, 'renders', 999_999.5)
  // Just under 2^53 micros, where splitting at 10^12 with floating-point division could round.
  a.metering.record({ agreementId: 'agr_2' }, 'request_bytes', 9_007_199_254.740991)
  b.metering.record({ agreementId: 'agr_2' }, 'request_bytes', 8_999_999_999.999999)
  t.equal((await b.metering.flush()).deliveredHere, false, 'the other only merges its sums')
  const outcome = await a.metering.flush()
  t.equal(outcome.sent, 5)
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '30')
  t.equal(kinde.usage('agr_1', 'renders'), '2000000')
  t.equal(kinde.usage('agr_2', 'egress_bytes'), '18000000000.5')
  t.equal(kinde.usage('agr_3', 'cpu_ms'), '10000000000000001000000')
  t.equal(kinde.usage('agr_2', 'request_bytes'), formatMicros(addMicros(toMicros(9_007_199_254.740991), toMicros(8_999_999_999.999999))))
  t.equal(kinde.records.length, 5, 'a record per pair per flush, whichever instance recorded it')
})

t.test('more pairs than one merge script carries are merged in several, exactly', async t => {
  const kinde = await emulator(t, { customers: 700 })
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix)
  const b = member(t, kinde, prefix)
  await a.metering.flush()
  for (let i = 1; i <= 700; i++) {
    a.metering.record({ agreementId: `agr_${i}` }, 'searches', i)
    b.metering.record({ agreementId: `agr_${i}` }, 'searches', 0.5)
    b.metering.record({ agreementId: `agr_${i}` }, 'renders', 1)
  }
  await b.metering.flush()
  const outcome = await a.metering.flush()
  t.equal(outcome.sent, 1400)
  t.equal(kinde.records.length, 1400)
  t.equal(kinde.usage('agr_1', 'searches'), '1.5')
  t.equal(kinde.usage('agr_700', 'searches'), '700.5')
  t.equal(kinde.usage('agr_700', 'renders'), '1')
})

/** What Redis does to `key`, from its keyspace notifications: `next(event)` resolves at the next such event. */
async function keyEvents (t: Test, key: string): Promise<{ next: (event: string) => Promise<void> }> {
  await connect(t).config('SET', 'notify-keyspace-events', 'Kgx$')
  const subscriber = connect(t)
  await subscriber.subscribe(`__keyspace@0__:${key}`)
  let waiting: { event: string, resolve: () => void } | undefined
  subscriber.on('message', (_channel: string, event: string) => {
    if (waiting?.event === event) waiting.resolve()
  })
  return {
    next: event => new Promise<void>((resolve, reject) => {
      // A deadline, so a lease that is never renewed or never expires fails the test instead of hanging it.
      const deadline = setTimeout(() => { reject(new Error(`no ${event} of ${key} within 5 s`)) }, 5_000)
      waiting = { event, resolve: () => { clearTimeout(deadline); waiting = undefined; resolve() } }
    })
  }
}

t.test('one instance at a time holds the lease; another takes over once it expires, or at once when released', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const lease = await keyEvents(t, `${prefix}lease`)
  const a = member(t, kinde, prefix, { store: { leaseTtl: 300 } })
  const b = member(t, kinde, prefix, { store: { leaseTtl: 300 } })
  const c = member(t, kinde, prefix, { store: { leaseTtl: 300 } })
  t.equal((await a.metering.flush()).deliveredHere, true)
  const acquired = Date.now()
  t.equal(a.store.isLeader, true)
  b.metering.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.equal((await b.metering.flush()).deliveredHere, false, 'b only merges')
  t.equal(b.store.isLeader, false)
  // Time passing is what is under test: a renews its lease (each renewal a PEXPIRE), so it outlives its TTL.
  let renewals = 0
  while (Date.now() - acquired <= 2 * 300) {
    await lease.next('expire')
    renewals++
  }
  t.equal((await b.metering.flush()).deliveredHere, false, `still held by a after twice its TTL (${renewals} renewals)`)
  t.equal(kinde.records.length, 0)

  await lease.next('expire')
  a.client.disconnect() // a dies just after a renewal: no more renewal, no release
  t.equal((await b.metering.flush()).deliveredHere, false, 'not before the lease expires')
  await lease.next('expired')
  t.equal((await b.metering.flush()).deliveredHere, true, 'taken over once the lease expired')
  t.equal(b.store.isLeader, true)
  t.equal(kinde.usage('agr_1', 'searches'), '1')

  t.equal((await c.metering.flush()).deliveredHere, false)
  await b.metering.close()
  t.equal((await c.metering.flush()).deliveredHere, true, 'released at close: no wait for expiry')
})

t.test('usage merged while a flush is under way goes to the next flush', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix)
  const b = member(t, kinde, prefix)
  await a.metering.flush()
  kinde.fault({ kind: 'delay', delayMs: 300 })
  a.metering.record({ agreementId: 'agr_1' }, 'searches', 1)
  const flushing = a.metering.flush()
  await waitFor(() => kinde.records.length === 1)
  b.metering.record({ agreementId: 'agr_1' }, 'searches', 10)
  await b.metering.flush()
  a.metering.record({ agreementId: 'agr_1' }, 'searches', 100)
  t.equal((await flushing).sent, 1)
  t.equal(kinde.records[0].meter_value, '1', 'the flush delivers its snapshot only')
  t.equal((await a.metering.flush()).sent, 1)
  t.equal(kinde.records[1].meter_value, '110', 'the next one the rest, in one record')
})

t.test('usage a flush could not deliver goes back to Redis and merges with newer usage', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix)
  const b = member(t, kinde, prefix)
  await a.metering.flush()
  kinde.fault({ kind: 'status', status: 503, times: 4 })
  a.metering.record({ agreementId: 'agr_1' }, 'searches', 1)
  const failed = await a.metering.flush()
  t.equal(failed.sent, 0)
  t.equal(failed.pending, 1)
  t.equal(a.metering.stats().pending.pairs, 0, 'held in Redis, not in the instance')
  b.metering.record({ agreementId: 'agr_1' }, 'searches', 2)
  await b.metering.flush()
  t.equal((await a.metering.flush()).sent, 1)
  t.same(kinde.records.filter(record => record.status === 200).map(record => record.meter_value), ['3'])
})

/** Records usage into a's store and takes it as the core would, leaving the take unsettled. */
async function takeUnsettled (t: Test, a: Member): Promise<NonNullable<Awaited<ReturnType<RedisStore['take']>>>> {
  const at = Date.now()
  await a.store.add({
    entries: [1, 2, 3].map(n => ({ kind: 0, id: `agr_${n}`, feature: 'searches', micros: n * 1_000_000, at })),
    oldest: at
  })
  const taken = await a.store.take()
  t.equal(taken?.entries.length, 3)
  return taken!
}

t.test('a leader that dies mid-flush: its successor delivers what it took and had not delivered', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix, { store: { leaseTtl: 200 } })
  const b = member(t, kinde, prefix, { store: { leaseTtl: 200 } })
  const taken = await takeUnsettled(t, a)
  // Kinde accepted agr_1's record, then a died before it settled.
  a.store.delivered(taken.id, [taken.entries.find(entry => entry.id === 'agr_1')!.key])
  await a.client.ping()
  a.client.disconnect()
  b.metering.record({ agreementId: 'agr_2' }, 'searches', 5)
  let outcome = await b.metering.flush()
  await waitFor(async () => {
    outcome = await b.metering.flush()
    return outcome.deliveredHere
  })
  t.equal(outcome.sent, 2, 'one record per pair, the recovered and the new usage together')
  t.equal(kinde.usage('agr_1', 'searches'), '0', 'delivered by a: not again')
  t.equal(kinde.usage('agr_2', 'searches'), '7')
  t.equal(kinde.usage('agr_3', 'searches'), '3')
  t.same(b.store.recovered, { snapshots: 1, entries: 2 })
  t.ok(b.logs.some(entry => entry.level === 'warn' && /did not finish delivering/.test(entry.msg ?? '') && entry.obj.units === '5'))
  t.equal((await b.metering.flush()).sent, 0, 'recovered once')
})

t.test('a leader that dies after reporting a record dropped: its successor does not handle that usage again', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix, { store: { leaseTtl: 200 } })
  const b = member(t, kinde, prefix, { store: { leaseTtl: 200 } })
  const taken = await takeUnsettled(t, a)
  // Kinde refused agr_2's record and a reported it dropped, then a died before it settled.
  a.store.dropped(taken.id, [taken.entries.find(entry => entry.id === 'agr_2')!.key])
  await a.client.ping()
  a.client.disconnect()
  await waitFor(async () => (await b.metering.flush()).deliveredHere)
  t.equal(kinde.usage('agr_1', 'searches'), '1')
  t.equal(kinde.usage('agr_2', 'searches'), '0', 'reported once, by a: never sent')
  t.equal(kinde.usage('agr_3', 'searches'), '3')
  t.same(b.store.recovered, { snapshots: 1, entries: 2 })
})

t.test("under ambiguous: 'drop' what a dead leader took is reported through onDrop instead", async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const dropped: Array<{ reason: string, records: any[] }> = []
  const a = member(t, kinde, prefix, { store: { leaseTtl: 200 } })
  const b = member(t, kinde, prefix, {
    store: { leaseTtl: 200 },
    metering: { ambiguous: 'drop', onDrop: (records, reason) => { dropped.push({ reason, records }) } }
  })
  await takeUnsettled(t, a)
  a.client.disconnect()
  await waitFor(async () => (await b.metering.flush()).deliveredHere)
  b.metering.record({ agreementId: 'agr_2' }, 'searches', 5)
  await b.metering.flush()
  t.equal(kinde.usage('agr_2', 'searches'), '5', 'only the new usage is delivered')
  t.equal(kinde.usage('agr_1', 'searches'), '0')
  t.equal(dropped.length, 1)
  t.equal(dropped[0].reason, 'ambiguous')
  t.same(dropped[0].records.map(record => [record.customer.agreementId, record.value]).sort(), [['agr_1', '1'], ['agr_2', '2'], ['agr_3', '3']])
  t.match(dropped[0].records[0].error.message, /stopped mid-flush/)
  t.equal(b.metering.stats().dropped.ambiguous.records, 3)
  t.notOk(b.logs.some(entry => /another instance took over/.test(entry.msg ?? '')))
  const admin = connect(t)
  t.same(await admin.keys(`${prefix}snapshot:*`), [], 'nothing left in flight')
})

t.test('a leader that lost its lease mid-flush leaves the delivery to its successor', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix, { store: { leaseTtl: 300 } })
  const b = member(t, kinde, prefix)
  const taken = await takeUnsettled(t, a)
  // a stalls past its lease: it expires and b takes over.
  await connect(t).del(`${prefix}lease`)
  t.equal((await b.metering.flush()).sent, 3)
  await waitFor(() => !a.store.isLeader) // its next renewal finds the lease gone
  a.store.putBack(taken.id, taken.entries.map(entry => entry.key))
  await a.store.settle(taken.id)
  t.ok(a.logs.some(entry => entry.level === 'warn' && /another instance took over/.test(entry.msg ?? '')))
  t.equal((await b.metering.flush()).sent, 0, 'nothing put back twice')
  t.equal(kinde.usage('agr_1', 'searches'), '1')
  t.equal(kinde.usage('agr_3', 'searches'), '3')
})

t.test('a client keyPrefix applies to every key, those the scripts derive included', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix, { client: { keyPrefix: 'app:' } })
  const taken = await takeUnsettled(t, a)
  const admin = connect(t)
  t.same((await admin.keys('*')).filter(key => key.includes(prefix)).sort(),
    [`app:${prefix}inflight`, `app:${prefix}lease`, `app:${prefix}seen:${a.store.instanceId}`, `app:${prefix}seq`, `app:${prefix}snapshot:1`])
  a.store.delivered(taken.id, [taken.entries[0].key])
  a.store.putBack(taken.id, taken.entries.slice(1).map(entry => entry.key))
  await a.store.settle(taken.id)
  t.same(await admin.keys(`app:${prefix}snapshot:*`), [])
  t.equal((await a.metering.flush()).sent, 2, 'what was put back, under the prefix')
})

t.test('a slow Redis: what timed out is not sent again while unanswered, and counts once', async t => {
  const kinde = await emulator(t)
  const prefix = freshPrefix()
  const a = member(t, kinde, prefix, { store: { timeout: 100 }, metering: { ambiguous: 'drop' } })
  await a.metering.flush()
  a.metering.record({ agreementId: 'agr_1' }, 'searches', 1)
  await server.pause(400)
  const slow = await a.metering.flush()
  t.equal(slow.deliveredHere, false, 'the merge timed out: no take')
  t.equal(a.store.isAvailable, false)
  t.equal(a.metering.stats().pending.units, '1', 'kept in memory')
  await waitFor(async () => (await a.metering.flush()).sent === 1, 3_000)
  t.equal(kinde.usage('agr_1', 'searches'), '1', 'merged once although it reached Redis twice')
  t.equal(a.store.isAvailable, true)

  // A take whose answer is lost: its snapshot is this instance's own, delivered next time as usual.
  a.metering.record({ agreementId: 'agr_2' }, 'searches', 2)
  await a.metering.flush() // merged and delivered
  await a.store.add({ entries: [{ kind: 0, id: 'agr_3', feature: 'searches', micros: 3_000_000, at: Date.now() }], oldest: Date.now() })
  await server.pause(400)
  t.equal((await a.metering.flush()).deliveredHere, false, 'the take timed out')
  await waitFor(async () => (await a.metering.flush()).sent === 1, 3_000)
  t.equal(kinde.usage('agr_3', 'searches'), '3')
  t.same(a.store.recovered, { snapshots: 0, entries: 0 }, 'not taken for another instance\'s')
  t.equal(a.metering.stats().dropped.ambiguous.records, 0)
  const errors = a.logs.filter(entry => /Redis is unavailable/.test(entry.msg ?? ''))
  const back = a.logs.filter(entry => entry.level === 'info' && /Redis answers again/.test(entry.msg ?? ''))
  t.equal(errors.length, 2, 'logged once per outage')
  t.equal(back.length, 2)
  t.match(errors[0].obj.err.message, /did not answer within 100 ms/)
})

t.test('redisStore validates its options, naming the one at fault', async t => {
  const client = connect(t, { lazyConnect: true })
  const cases: Array<[string, unknown]> = [
    ['options', null],
    ['client', {}],
    ['client', { client: { get () {} } }],
    ['prefix', { client, prefix: '' }],
    ['prefix', { client, prefix: 42 }],
    ['syncInterval', { client, syncInterval: 0 }],
    ['syncInterval', { client, syncInterval: 'fast' }],
    ['leaseTtl', { client, leaseTtl: -1 }],
    ['leaseTtl', { client, leaseTtl: 1500.5 }],
    ['timeout', { client, timeout: Infinity }]
  ]
  for (const [option, options] of cases) {
    t.throws(() => redisStore(options as RedisStoreOptions), { code: 'KINDE_METERING_INVALID_OPTION', option }, `${option}: ${JSON.stringify(options && { ...options, client: undefined })}`)
  }
  const store = redisStore({ client })
  t.equal(store.syncInterval, 1000)
  t.equal(store.shared, true)
})

t.test('one store serves one metering instance', async t => {
  const kinde = await emulator(t)
  const a = member(t, kinde, freshPrefix())
  t.throws(() => new Metering({ domain: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret, store: a.store }),
    { code: 'KINDE_METERING_INVALID_OPTION', option: 'store' })
})
