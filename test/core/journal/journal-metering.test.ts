/**
 * The journal through the core and the Fastify plugin, against the emulator over HTTP; and, with
 * a loopback Kinde that holds sends, what a process killed in the middle of one leaves.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFile, readdir, readFile, watch, writeFile } from 'node:fs/promises'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Metering, type DroppedRecord, type UsageStore } from '../../../lib/index.js'
import { decodeJournal, JournalState } from '../../../lib/core/journal/format.js'
import { emulator, meteredApp, memoryLogger, pluginOptions } from '../../fixtures.js'
import { deadJournal } from './children.js'
import { accepted, json, tokenAnswer } from '../kinde/stand-in.js'
import type { KindeEmulator } from '../../../lib/testing.js'
import type { Test } from 'tap'

/** A bare core on the emulator with a journal in `dir`, closed at teardown. */
function core (t: Test, kinde: KindeEmulator, dir: string, extra: Record<string, unknown> = {}): Metering {
  const { customer, ...options } = pluginOptions(kinde)
  const metering = new Metering({ ...options, logger: memoryLogger().logger, journal: { dir }, ...extra })
  t.teardown(() => metering.close())
  return metering
}

/** Units per agreement the journal in `dir` holds pending, replayed from disk. */
async function onDisk (dir: string): Promise<Record<string, string>> {
  const name = (await readdir(dir)).find(file => file.endsWith('.journal'))!
  const state = new JournalState()
  for (const line of decodeJournal(await readFile(join(dir, name), 'utf8')).lines) state.apply(line)
  return Object.fromEntries(state.split(false).pending.map(entry => [entry.id, String(Number(entry.micros) / 1e6)]))
}

/** Copies the journal in `from` into `to` as the journal of a process that has died: what a kill at this moment leaves. */
async function leaveAsDead (from: string, to: string): Promise<void> {
  const pid = spawnSync(process.execPath, ['-e', '']).pid!
  const name = (await readdir(from)).find(file => file.endsWith('.journal'))!
  await copyFile(join(from, name), join(to, `${pid}-0000dead.journal`))
  await writeFile(join(to, `${pid}-0000dead.lock`), JSON.stringify({ pid, host: hostname(), id: `${pid}-0000dead` }))
}

/**
 * A Kinde on loopback that holds each meter usage request until the test answers it (tokens are
 * answered at once): a send caught in flight. `next()` resolves once the next one has arrived,
 * and rejects if none arrives within 5 s, so that a send that never comes fails the test at once.
 */
async function holdingKinde (t: Test): Promise<{ url: string, next: () => Promise<(status: number) => void> }> {
  const arrived: Array<(response: ServerResponse) => void> = []
  const held: ServerResponse[] = []
  const server = createServer((request, response) => {
    request.resume().on('end', () => {
      if (request.url === '/oauth2/token') return response.writeHead(tokenAnswer.status, tokenAnswer.headers).end(tokenAnswer.body)
      const waiter = arrived.shift()
      if (waiter === undefined) held.push(response)
      else waiter(response)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  const answer = (response: ServerResponse) => (status: number): void => {
    const body = status === 200 ? accepted.body : '{"errors":[{"code":"SERVICE_UNAVAILABLE","message":"Service unavailable"}]}'
    response.writeHead(status, json).end(body)
  }
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    next: async () => answer(held.shift() ?? await new Promise<ServerResponse>((resolve, reject) => {
      const deadline = setTimeout(() => { reject(new Error('no meter usage request arrived within 5 s')) }, 5_000)
      arrived.push(response => { clearTimeout(deadline); resolve(response) })
    }))
  }
}

t.test('a server started on the directory of one that was killed delivers the usage it left, once', async t => {
  const dir = t.testdir()
  await deadJournal(t, dir, [
    { append: [[0, 'agr_1', 'searches', 3_000_000, 1000], [0, 'agr_2', 'searches', 2_500_000, 1000]] },
    // Delivered before the crash: not to be sent again.
    { take: [[0, 'agr_2', 'searches', 2_500_000, 1000]] },
    { send: [0] },
    { deliver: [0] },
    { settle: [] },
    { append: [[0, 'agr_3', 'renders', 1_000_000, 2000]] }
  ])
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde, { journal: { dir } })
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  t.match(app.metering.stats(), { pending: { pairs: 2, units: '4' }, journal: { state: 'open', recovered: { journals: 1, pending: { records: 2, units: '4' } } } },
    'taken over when the plugin registered')
  await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '4')
  t.equal(kinde.usage('agr_2', 'searches'), '0')
  t.equal(kinde.usage('agr_3', 'renders'), '1')
  t.equal(kinde.records.length, 2)
  await app.close()
  t.same(await readdir(dir), [], 'nothing left in the directory after a clean close')
})

t.test('under ambiguous: drop, usage that was being sent when the process died is reported through onDrop, not sent', async t => {
  const dir = t.testdir()
  await deadJournal(t, dir, [
    { append: [[0, 'agr_1', 'searches', 5_000_000, 1000], [0, 'agr_2', 'searches', 2_000_000, 1000]] },
    { take: [[0, 'agr_1', 'searches', 5_000_000, 1000], [0, 'agr_2', 'searches', 2_000_000, 1000]] },
    // agr_1 was being sent; agr_2 was waiting for its turn.
    { send: [0] },
    { append: [[0, 'agr_1', 'searches', 1_000_000, 3000]] }
  ])
  const kinde = await emulator(t)
  const drops: Array<[DroppedRecord[], string]> = []
  const metering = core(t, kinde, dir, { ambiguous: 'drop', onDrop: (records: DroppedRecord[], reason: string) => { drops.push([records, reason]) } })
  await metering.ready()
  t.match(drops, [[[{ customer: { agreementId: 'agr_1' }, value: '5', error: { message: /in flight when the process that recorded it died/ } }], 'ambiguous']])
  t.match(metering.stats(), { dropped: { ambiguous: { records: 1, units: '5' } }, journal: { recovered: { ambiguous: { records: 1, units: '5' } } } })
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1')
  t.equal(kinde.usage('agr_2', 'searches'), '2')
})

t.test('usage is journaled in batches while the server runs, and marked delivered as Kinde accepts it', async t => {
  const dir = t.testdir()
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde, { journal: { dir, syncInterval: 20 } })
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  await app.metering.ready()
  const written = app.metering.stats().journal!.bytes
  // A deadline for the watch: if the batch timer never writes, the test fails instead of hanging.
  const changes = watch(dir, { signal: AbortSignal.timeout(10_000) })
  for (let i = 0; i < 3; i++) await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  t.equal(app.metering.stats().journal!.bytes, written, 'requests write nothing themselves')
  let held: Record<string, string> = {}
  for await (const _ of changes) {
    held = await onDisk(dir)
    if (held.agr_1 === '3') break
  }
  t.same(held, { agr_1: '3' }, 'the batch timer alone, with no flush, brought the three requests to disk')
  t.equal(kinde.records.length, 0, 'nothing was sent: the write came from the journal, not a delivery')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.same(await onDisk(dir), {}, 'delivered: nothing left pending in the journal')
})

t.test('close reports what it could not deliver and leaves nothing for the next process', async t => {
  const dir = t.testdir()
  const kinde = await emulator(t)
  kinde.fault({ kind: 'status', status: 503, times: 1000 })
  const drops: string[] = []
  const metering = core(t, kinde, dir, { shutdownTimeout: 30, onDrop: (_: unknown, reason: string) => { drops.push(reason) } })
  await metering.ready()
  metering.record({ agreementId: 'agr_1' }, 'searches', 2)
  const outcome = await metering.close()
  t.equal(outcome.dropped, 1)
  t.same(drops, ['shutdown'])
  t.same(await readdir(dir), ['dead-letter'], 'no journal left: only the dead letter, which holds the record dropped')
  const next = core(t, kinde, dir)
  await next.ready()
  t.equal(next.stats().pending.pairs, 0, 'a process started next has nothing to send again')
})

t.test('a journal directory that cannot be used: requests are metered and delivered from memory', async t => {
  const dir = t.testdir({ 'a-file': 'not a directory' })
  const kinde = await emulator(t)
  const { logger, entries } = memoryLogger()
  const app = await meteredApp(t, kinde, { journal: { dir: join(dir, 'a-file', 'journal') }, logger })
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  t.equal((await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })).statusCode, 200)
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1')
  t.match(app.metering.stats().journal, { state: 'off', lastError: /^ENOTDIR/ })
  t.match(entries.filter(entry => entry.level === 'error'), [{ msg: /journal directory cannot be used/ }])
})

t.test('invalid journal options fail registration with an InvalidOptionError naming the option', async t => {
  const kinde = await emulator(t)
  const shared: UsageStore = {
    syncInterval: Infinity,
    shared: true,
    attach () {},
    add () {},
    take: async () => undefined,
    delivered () {},
    dropped () {},
    putBack () {},
    settle () {},
    pending: () => ({ pairs: 0, micros: 0, oldest: Infinity }),
    close: async () => {}
  }
  for (const [journal, option, store] of [
    [{ dir: '' }, 'journal.dir'],
    [{ dir: '/tmp', syncInterval: -1 }, 'journal.syncInterval'],
    [{ dir: '/tmp', fsync: 1 }, 'journal.fsync'],
    [{ dir: '/tmp' }, 'journal', shared]
  ] as const) {
    await t.rejects(meteredApp(t, kinde, { journal: journal as any, store: store as UsageStore | undefined }),
      { name: 'InvalidOptionError', code: 'KINDE_METERING_INVALID_OPTION', option })
  }
})

t.test('a record is journaled in flight once, before its first send: a process killed during that send or its retry leaves just that usage ambiguous', async t => {
  const dir = t.testdir({ live: {}, first: {}, retry: {} })
  const held = await holdingKinde(t)
  const sender = new Metering({
    domain: held.url, clientId: 'stand-in-id', clientSecret: 'stand-in-secret', flushInterval: 3_600_000, retry: { baseDelay: 1, maxDelay: 5 },
    shutdownTimeout: 20, ambiguous: 'drop', journal: { dir: join(dir, 'live') }, logger: memoryLogger().logger
  })
  t.teardown(() => sender.close())
  await sender.ready()
  sender.record({ agreementId: 'agr_1' }, 'searches', 4)
  const flushing = sender.flush()
  const answerFirst = await held.next()
  await leaveAsDead(join(dir, 'live'), join(dir, 'first'))
  // Recorded during the send, in the same pair: not in flight, and on disk before the retry.
  // A deadline for the watch: if the batch timer never writes, the test fails instead of hanging.
  const changes = watch(join(dir, 'live'), { signal: AbortSignal.timeout(5_000) })
  sender.record({ agreementId: 'agr_1' }, 'searches', 1)
  for await (const _ of changes) if ((await onDisk(join(dir, 'live'))).agr_1 === '5') break
  answerFirst(503)
  const answerRetry = await held.next()
  await leaveAsDead(join(dir, 'live'), join(dir, 'retry'))
  answerRetry(200)
  t.equal((await flushing).sent, 1)
  // What was recorded during the send is delivered now, so close() at teardown has nothing to wait for.
  const flushingRest = sender.flush()
  const answerRest = await held.next()
  answerRest(200)
  t.equal((await flushingRest).sent, 1)

  const kinde = await emulator(t)
  for (const [killed, ambiguous, pending] of [['first', '4', { pairs: 0, units: '0' }], ['retry', '4', { pairs: 1, units: '1' }]] as const) {
    const drops: Array<[DroppedRecord[], string]> = []
    const next = core(t, kinde, join(dir, killed), { ambiguous: 'drop', onDrop: (records: DroppedRecord[], reason: string) => { drops.push([records, reason]) } })
    await next.ready()
    t.match(drops, [[[{ customer: { agreementId: 'agr_1' }, value: ambiguous }], 'ambiguous']], `killed during the ${killed} send: what was being sent is ambiguous`)
    t.same(next.stats().pending, pending, `killed during the ${killed} send: what was recorded meanwhile is pending`)
  }
})
