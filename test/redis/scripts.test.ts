/**
 * The Redis scripts on a real redis-server: every key they touch is declared in KEYS (Redis
 * itself does not check it, so the scripts run here behind a prologue that fails on any other
 * key, as Redis-compatible servers that enforce declared keys do), and a take's settle goes in
 * steps of at most MERGE_CHUNK pairs that can each be sent again without counting a pair twice.
 */
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { Metering, type MeteringOptions } from '../../lib/index.js'
import { redisStore, type RedisStore, type RedisStoreOptions } from '../../lib/redis.js'
import { MERGE_CHUNK } from '../../lib/redis/outbox.js'
import { LEASE, MERGE_BATCH, PREPARE, SETTLE, TAKE } from '../../lib/redis/scripts.js'
import type { KindeEmulator } from '../../lib/testing.js'
import type { UsageEntry } from '../../lib/core/usage/types.js'
import { emulator, FEATURES, memoryLogger } from '../fixtures.js'
import { startRedisServer, waitFor } from '../helpers/redis-server.js'

const server = await startRedisServer()
t.teardown(() => server.stop())

const SCRIPTS = { MERGE_BATCH, PREPARE, TAKE, SETTLE, LEASE }
const NAME_OF = new Map(Object.entries(SCRIPTS).map(([name, script]) => [script.sha, name]))

/**
 * Lua run before a script: a local `redis` shadows the real one for the rest of the script, and
 * fails every command whose key (both keys for RENAME) is not among KEYS.
 */
const DECLARED_KEYS_ONLY = `
local real = redis
local declared = {}
for _, key in ipairs(KEYS) do declared[key] = true end
local redis = { call = function (command, ...)
  local args = { ... }
  for i = 1, command == 'RENAME' and 2 or 1 do
    if not declared[args[i]] then error('undeclared key ' .. tostring(args[i])) end
  end
  return real.call(command, ...)
end }
`

interface ScriptCall { name: string, keys: string[], args: Array<string | number> }

/**
 * A call-through view of a real client for the store: each script runs on the real server (with
 * `prologue` before it), and every call is kept; `answer` may replace a reply by an error, as a
 * connection lost after Redis ran the command would.
 */
function watched (client: Redis, options: { prologue?: string, answer?: (call: ScriptCall, reply: unknown) => unknown } = {}): { client: Redis, calls: ScriptCall[], errors: string[] } {
  const calls: ScriptCall[] = []
  const errors: string[] = []
  const evalsha = async (sha: string, numKeys: number, all: Array<string | number>): Promise<unknown> => {
    const name = NAME_OF.get(sha)!
    const call = { name, keys: all.slice(0, numKeys).map(String), args: all.slice(numKeys) }
    calls.push(call)
    let reply: unknown
    try {
      reply = await client.eval((options.prologue ?? '') + SCRIPTS[name as keyof typeof SCRIPTS].source, numKeys, ...all)
    } catch (error) {
      errors.push(`${name}: ${(error as Error).message}`)
      throw error
    }
    return options.answer === undefined ? reply : await options.answer(call, reply)
  }
  const view = new Proxy(client, {
    get: (target, property) => property === 'evalsha' ? evalsha : (Reflect.get(target, property) as Function).bind(target)
  })
  return { client: view, calls, errors }
}

function connect (t: Test): Redis {
  const client = new Redis({ host: '127.0.0.1', port: server.port })
  t.teardown(() => { client.disconnect() })
  return client
}

let prefixes = 0

/** One instance of a fleet on the emulator, through `client`; closed at teardown. */
function member (t: Test, kinde: KindeEmulator, prefix: string, client: Redis, store: Partial<RedisStoreOptions> = {}, options: Partial<MeteringOptions> = {}): { metering: Metering, store: RedisStore } {
  const shared = redisStore({ client, prefix, syncInterval: 3_600_000, ...store })
  const metering = new Metering({
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    flushInterval: 3_600_000,
    retry: { attempts: 1, baseDelay: 1, maxDelay: 5 },
    logger: memoryLogger().logger,
    store: shared,
    ...options
  })
  t.teardown(() => metering.close())
  return { metering, store: shared }
}

t.test('every key each script touches is declared in KEYS', async t => {
  const kinde = await emulator(t)
  const prefix = `{declared${++prefixes}}:`
  const clientA = connect(t)
  const checkedA = watched(clientA, { prologue: DECLARED_KEYS_ONLY })
  const checkedB = watched(connect(t), { prologue: DECLARED_KEYS_ONLY })
  const a = member(t, kinde, prefix, checkedA.client, { leaseTtl: 300 })
  const b = member(t, kinde, prefix, checkedB.client, { leaseTtl: 300 })

  a.metering.record({ agreementId: 'agr_1' }, 'searches', 1.5)
  a.metering.set({ agreementId: 'agr_2' }, 'seats', 3)
  kinde.fault({ kind: 'status', status: 503, times: 2 })
  t.equal((await a.metering.flush()).pending, 2, 'merged, taken, failed and put back')
  t.equal((await b.metering.flush()).deliveredHere, false, 'the lease is held')
  t.equal((await a.metering.flush()).sent, 2)

  // a takes the fleet's usage and stops before it settles: b claims what a left in flight.
  b.metering.record({ agreementId: 'agr_3' }, 'searches', 2)
  await b.metering.flush()
  await a.store.add({ entries: [{ kind: 0, id: 'agr_1', feature: 'searches', micros: 4_000_000, at: Date.now() }], oldest: Date.now() })
  t.equal((await a.store.take())?.entries.length, 2)
  clientA.disconnect()
  await waitFor(async () => (await b.metering.flush()).deliveredHere)
  await waitFor(() => checkedB.calls.some(call => call.name === 'LEASE'), 2_000) // b renews the lease it now holds
  t.equal(kinde.usage('agr_1', 'searches'), '5.5')
  t.equal(kinde.usage('agr_2', 'seats'), '3')
  t.equal(kinde.usage('agr_3', 'searches'), '2')
  await b.metering.close()

  t.same([...new Set([...checkedA.calls, ...checkedB.calls].map(call => call.name))].sort(), Object.keys(SCRIPTS).sort(), 'every script ran')
  t.same([...checkedA.errors, ...checkedB.errors].filter(error => /undeclared/.test(error)), [], 'none touched a key it did not declare')
})

t.test('a settle goes in steps of at most MERGE_CHUNK pairs; a step whose answer was lost and is sent again counts nothing twice', async t => {
  const customers = Math.ceil((MERGE_CHUNK * 1.5) / FEATURES.length)
  const kinde = await emulator(t, { customers })
  const prefix = `{chunked${++prefixes}}:`
  let lost = 0
  const spied = watched(connect(t), {
    // Redis runs the first step of the first settle, and its answer is lost on the way back.
    answer: (call, reply) => {
      if (call.name !== 'SETTLE' || lost++ > 0) return reply
      throw new Error('connection lost before the answer')
    }
  })
  const a = member(t, kinde, prefix, spied.client)
  const expected = new Map<string, string>()
  for (let customer = 1; customer <= customers; customer++) {
    for (const [i, feature] of FEATURES.entries()) {
      a.metering.record({ agreementId: `agr_${customer}` }, feature, customer + i / 100)
      expected.set(`agr_${customer} ${feature}`, String(customer + i / 100))
    }
  }
  kinde.fault({ kind: 'status', status: 503, times: expected.size })
  const failed = await a.metering.flush()
  t.equal(failed.pending, expected.size, 'every pair failed and was put back')
  const settles = spied.calls.filter(call => call.name === 'SETTLE')
  t.equal(settles.length, 1, 'the first step went, and its answer was lost')

  const outcome = await a.metering.flush()
  t.equal(outcome.sent, expected.size, 'the settle was sent again, whole, then the fleet\'s usage taken and delivered')
  const steps = spied.calls.filter(call => call.name === 'SETTLE')
  const pairsOf = (call: ScriptCall): number => (call.args.length - 3 - (call.keys.length - 2)) / 4
  t.ok(steps.every(call => pairsOf(call) <= MERGE_CHUNK), `no step over ${MERGE_CHUNK} pairs: ${steps.map(pairsOf).join(', ')}`)
  t.equal(steps.slice(0, 3).reduce((sum, call) => sum + pairsOf(call), 0), MERGE_CHUNK + expected.size, 'the first step, then both steps again')
  for (const [pair, value] of expected) {
    const [agreement, feature] = pair.split(' ')
    if (kinde.usage(agreement, feature) !== value) t.fail(`${pair}: ${kinde.usage(agreement, feature)}, expected ${value}`)
  }
  t.equal(kinde.records.filter(record => record.applied).length, expected.size, 'one record per pair')
  t.same(await connect(t).keys(`${prefix}snapshot:*`), [], 'nothing left in flight')
})

t.test('a RedisStore used before the core attached it fails with an error that says what to do', async t => {
  const store = redisStore({ client: connect(t), prefix: `{unattached${++prefixes}}:` })
  const notAttached = { name: 'KindeMeteringError', code: 'KINDE_METERING_STORE_NOT_ATTACHED', message: /pass it as the store option/ }
  t.throws(() => store.add({ entries: [{ kind: 0, id: 'agr_1', feature: 'searches', micros: 1, at: 1 }], oldest: 1 }), notAttached)
  await t.rejects(store.take(), notAttached)
  await t.rejects(store.close(), notAttached)
  t.same(store.pending(), { pairs: 0, micros: 0, oldest: Infinity }, 'nothing was kept')
})

t.test('a lease that changes hands between the two steps of a take: no take, and the usage waits for the new holder', async t => {
  const kinde = await emulator(t)
  const prefix = `{race${++prefixes}}:`
  const admin = connect(t)
  let raced = false
  const spied = watched(connect(t), {
    // Between PREPARE and TAKE, another instance takes the lease (the holder's expired meanwhile).
    answer: async (call, reply) => {
      if (call.name === 'PREPARE' && !raced) {
        raced = true
        await admin.set(`${prefix}lease`, 'another-instance', 'PX', 60_000)
      }
      return reply
    }
  })
  const a = member(t, kinde, prefix, spied.client)
  a.metering.record({ agreementId: 'agr_1' }, 'searches', 2.5)
  const lost = await a.metering.flush()
  t.equal(lost.deliveredHere, false, 'TAKE found the lease held by another instance')
  t.equal(a.store.isLeader, false)
  t.equal(kinde.usage('agr_1', 'searches'), '0')
  await admin.del(`${prefix}lease`)
  t.equal((await a.metering.flush()).sent, 1, 'merged once, delivered by the next holder')
  t.equal(kinde.usage('agr_1', 'searches'), '2.5')
})

t.test('a level held by two snapshots of one take: the later set wins, whichever snapshot holds it', async t => {
  const kinde = await emulator(t)
  const prefix = `{levels${++prefixes}}:`
  const deadClient = connect(t)
  const dead = member(t, kinde, prefix, deadClient, { leaseTtl: 200 })
  const b = member(t, kinde, prefix, connect(t), { leaseTtl: 200 })
  const seats = (micros: number, at: number): UsageEntry => ({ kind: 0, id: 'agr_1', feature: 'seats', micros, at, absolute: true })
  await dead.store.add({ entries: [seats(7_000_000, 2_000)], oldest: 2_000 })
  t.equal((await dead.store.take())?.entries.length, 1, 'taken, then never settled: the instance died')
  deadClient.disconnect()
  // Set before the dead instance's value, merged after it: its snapshot is claimed last.
  await b.store.add({ entries: [seats(5_000_000, 1_000)], oldest: 1_000 })
  await waitFor(async () => (await b.metering.flush()).deliveredHere)
  t.same(kinde.records.filter(record => record.applied).map(record => record.meter_value), ['7'], 'one record, of the later value')
})
