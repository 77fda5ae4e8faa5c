/**
 * `kinde-metering replay` over HTTP through the emulator: dead-lettered usage is delivered
 * exactly once, summed per (agreement, feature); what Kinde rejects stays, named in the output;
 * a dry run sends nothing; a replay killed mid-run and run again over-counts at most the records
 * whose send was under way at the kill.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CustomerRef } from '../../lib/index.js'
import type { KindeEmulator } from '../../lib/testing.js'
import { replay } from '../../lib/cli/replay.js'
import { REPLAY_USAGE } from '../../lib/cli/replay-args.js'
import { appendDeadLetter, readDeadLetter } from '../../lib/core/dead-letter/file.js'
import { coreOn, emulator, meteredApp } from '../fixtures.js'
import { plainEnv, run } from '../helpers/processes.js'
import { waitFor } from '../helpers/redis-server.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MAIN = join(ROOT, 'dist', 'esm', 'cli', 'main.js')

/** Credentials of the emulator, as the plugin reads them from the environment. */
function kindeEnv (kinde: KindeEmulator): Record<string, string> {
  return { KINDE_DOMAIN: kinde.url, KINDE_MANAGEMENT_CLIENT_ID: kinde.clientId, KINDE_MANAGEMENT_CLIENT_SECRET: kinde.clientSecret }
}

/** Runs `replay` in this process, as the command would, and collects what it printed. */
async function replayHere (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await replay(argv, {
    stdout: { write: (text: string) => { stdout += text } },
    stderr: { write: (text: string) => { stderr += text } },
    env
  })
  return { code, stdout, stderr }
}

/** Serves `usage` with Kinde down for the whole shutdown, so all of it is dead-lettered in `dir`. */
async function deadLetterOf (t: Test, kinde: KindeEmulator, dir: string, usage: Array<[CustomerRef, string, number]>): Promise<void> {
  kinde.fault({ kind: 'status', status: 503, times: 1_000_000 })
  const core = coreOn(t, kinde, { deadLetter: { dir }, shutdownTimeout: 30 })
  for (const [customer, feature, value] of usage) t.ok(core.record(customer, feature, value))
  await core.close()
  kinde.clearFaults()
}

/** Meter usage Kinde applied, per `agreement/feature`. */
function applied (kinde: KindeEmulator, pairs: string[]): Record<string, string> {
  return Object.fromEntries(pairs.map(pair => {
    const [agreement, feature] = pair.split('/')
    return [pair, kinde.usage(agreement, feature)]
  }))
}

t.before(() => {
  if (!existsSync(MAIN)) throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
})

t.test('Kinde back: replay delivers the dead letter exactly, one record per pair; a second replay sends nothing', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  // Two processes shut down while Kinde was down: the same pair is dead-lettered by both. The
  // first is a server, whose requests are metered by the plugin.
  kinde.fault({ kind: 'status', status: 503, times: 1_000_000 })
  const app = await meteredApp(t, kinde, { deadLetter: { dir }, shutdownTimeout: 30 })
  app.get('/search', async (_request, reply) => { reply.meter('searches', 1.1); return 'ok' })
  app.get('/download', async (_request, reply) => { reply.meter('egress_bytes', 1.25); return 'ok' })
  app.get('/probe', async (_request, reply) => { reply.meter('searches', 0.000001); return 'ok' })
  t.equal((await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })).statusCode, 200)
  for (let i = 0; i < 4; i++) await app.inject({ url: '/download', headers: { 'x-agreement': 'agr_3' } })
  await app.inject({ url: '/probe', headers: { 'x-agreement': 'agr_2' } })
  await app.close()
  kinde.clearFaults()
  await deadLetterOf(t, kinde, dir, [[{ agreementId: 'agr_1' }, 'searches', 2.2]])
  const pairs = ['agr_1/searches', 'agr_2/searches', 'agr_3/egress_bytes']
  t.same(applied(kinde, pairs), { 'agr_1/searches': '0', 'agr_2/searches': '0', 'agr_3/egress_bytes': '0' }, 'nothing applied while Kinde was down')
  const sendsBefore = kinde.calls.meter_usage
  const tokensBefore = kinde.calls.token

  const dry = await replayHere([dir, '--dry-run'], kindeEnv(kinde))
  t.equal(dry.code, 0)
  t.match(dry.stdout, 'would send: agreement agr_1, feature searches, delta 3.3 (2 record(s))')
  t.match(dry.stdout, 'would send: agreement agr_3, feature egress_bytes, delta 5 (1 record(s))')
  t.equal(kinde.calls.meter_usage, sendsBefore, 'a dry run sends nothing')
  t.equal(kinde.calls.token, tokensBefore, 'a dry run does not even fetch a token')

  const first = await run(process.execPath, [MAIN, 'replay', dir], { cwd: ROOT, env: plainEnv(kindeEnv(kinde)) })
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, 'replayed 4 record(s), 8.300001 unit(s), in 3 send(s)')
  t.same(applied(kinde, pairs), { 'agr_1/searches': '3.3', 'agr_2/searches': '0.000001', 'agr_3/egress_bytes': '5' }, 'totals equal served, per pair')
  t.equal(kinde.records.filter(record => record.applied).length, 3, 'one record per pair')

  const sendsAfter = kinde.calls.meter_usage
  const second = await replayHere([dir], kindeEnv(kinde))
  t.equal(second.code, 0)
  t.match(second.stdout, 'replayed 0 record(s)')
  t.equal(kinde.calls.meter_usage, sendsAfter, 'a second replay sends nothing')
  const contents = await readDeadLetter(dir)
  t.same(contents.records, [])
  t.equal(contents.replayed, 4)

  const later = coreOn(t, kinde, { deadLetter: { dir } })
  await later.close()
  t.same(later.stats().deadLetter?.byReason.shutdown, { records: 0, units: '0' }, 'a process started later counts nothing left')
})

t.test('records for a feature missing from the plan are rejected on replay, stay in the dead letter, and make replay exit 1 naming them', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  await deadLetterOf(t, kinde, dir, [
    [{ agreementId: 'agr_1' }, 'not_in_plan', 2],
    [{ agreementId: 'agr_1' }, 'not_in_plan', 0.5],
    [{ agreementId: 'agr_2' }, 'searches', 4]
  ])
  const first = await replayHere([dir], kindeEnv(kinde))
  t.equal(first.code, 1)
  t.match(first.stdout, 'replayed 1 record(s), 4 unit(s), in 1 send(s)')
  t.match(first.stdout, /remaining: agreement agr_1, feature not_in_plan, delta 2\.5 \(1 record\(s\)\): rejected: meter usage send answered HTTP 400 .*FEATURE_NOT_FOUND/)
  t.equal(kinde.usage('agr_2', 'searches'), '4')
  t.equal(kinde.usage('agr_1', 'not_in_plan'), '0')
  const [kept] = (await readDeadLetter(dir)).records
  t.match(kept, { reason: 'rejected', feature: 'not_in_plan', value: '2.5', error: { status: 400 } }, 'kept with its latest reason and error')

  t.same(await replayHere([dir, '--reason', 'shutdown'], kindeEnv(kinde)), { code: 0, stdout: 'replayed 0 record(s), 0 unit(s), in 0 send(s)\n', stderr: '' },
    'nothing remains among the records selected by reason')
  const again = await replayHere([dir, '--reason', 'rejected', '--json'], kindeEnv(kinde))
  t.equal(again.code, 1)
  t.match(JSON.parse(again.stdout), {
    replayed: { records: 0, units: '0', sends: 0 },
    remaining: [{ agreementId: 'agr_1', feature: 'not_in_plan', meterType: 'delta', records: 1, units: '2.5', why: /^rejected: / }]
  })
  t.equal(kinde.usage('agr_2', 'searches'), '4', 'the accepted record was not sent again')
})

t.test('a record the plugin rejected stays rejected on replay; once the plan includes the feature, replay delivers it', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  const core = coreOn(t, kinde, { deadLetter: { dir } })
  core.record({ agreementId: 'agr_1' }, 'gpu_hours', 3)
  await core.close()
  t.match((await readDeadLetter(dir)).records, [{ reason: 'rejected', agreementId: 'agr_1', error: { status: 400 } }])
  const refused = await replayHere([dir], kindeEnv(kinde))
  t.equal(refused.code, 1)
  t.match(refused.stdout, /remaining: agreement agr_1, feature gpu_hours, delta 3 \(1 record\(s\)\): rejected: .*FEATURE_NOT_FOUND/)
  kinde.addAgreement({ id: 'agr_1', customerId: 'cus_1', features: ['searches', 'gpu_hours'] })
  t.equal((await replayHere([dir], kindeEnv(kinde))).code, 0)
  t.equal(kinde.usage('agr_1', 'gpu_hours'), '3')
})

t.test('a customer without an agreement stays no_agreement until it has one; replay then delivers its usage', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  const core = coreOn(t, kinde, { deadLetter: { dir } })
  core.record({ customerId: 'cus_new' }, 'searches', 0.5)
  await core.close()
  const waiting = await replayHere([dir], kindeEnv(kinde))
  t.equal(waiting.code, 1)
  t.match(waiting.stdout, 'remaining: customer {"customerId":"cus_new"}, feature searches, delta 0.5 (1 record(s)): no_agreement: no active Kinde agreement')
  kinde.addAgreement({ id: 'agr_new', customerId: 'cus_new', features: ['searches'] })
  t.equal((await replayHere([dir, '--reason', 'no_agreement'], kindeEnv(kinde))).code, 0)
  t.equal(kinde.usage('agr_new', 'searches'), '0.5')
})

t.test('a customer that still cannot be looked up stays pending with its reason, and replay says so', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  await deadLetterOf(t, kinde, dir, [[{ customerId: 'cus_1' }, 'searches', 3]])
  kinde.fault({ endpoint: 'agreements', kind: 'status', status: 500, times: 1_000_000 })
  const outcome = await replayHere([dir], kindeEnv(kinde))
  t.equal(outcome.code, 1)
  t.match(outcome.stdout, 'remaining: customer {"customerId":"cus_1"}, feature searches, delta 3 (1 record(s)): not delivered in this run')
  t.match(outcome.stderr, /customer look-up failed.*\(/)
  t.match((await readDeadLetter(dir)).records, [{ reason: 'shutdown', value: '3' }])
  kinde.clearFaults()
  t.equal((await replayHere([dir], kindeEnv(kinde))).code, 0)
  t.equal(kinde.usage('agr_1', 'searches'), '3')
})

t.test('a record this version cannot send (another meter type, a damaged value) is shown and stays', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  const base = { t: 'R', customer: { agreementId: 'agr_1' }, agreementId: 'agr_1', feature: 'searches', timestamp: '2026-01-01T00:00:00.000Z', reason: 'overflow', time: '2026-01-01T00:00:01.000Z' } as const
  await appendDeadLetter(dir, 'hand.deadletter', [
    { ...base, id: 'a', value: '10', meterType: 'gauge' },
    { ...base, id: 'b', value: 'ten', meterType: 'delta' },
    { ...base, id: 'c', feature: 'seats', value: '7', meterType: 'absolute' }
  ])
  const dry = await replayHere([dir, '--dry-run', '--json'])
  t.match(JSON.parse(dry.stdout), {
    dryRun: true,
    wouldSend: [],
    cannotSend: [
      { meterType: 'gauge', why: 'meter type "gauge" cannot be sent by this version' },
      { why: 'value "ten" is not a decimal amount' },
      { feature: 'seats', meterType: 'absolute', why: /never resent: set the current value again with metering\.set\(\)/ }
    ]
  })
  const text = await replayHere([dir, '--dry-run'])
  t.match(text.stdout, 'cannot send: agreement agr_1, feature searches, gauge 10 (1 record(s)): meter type "gauge" cannot be sent by this version')
  const sent = await replayHere([dir], kindeEnv(kinde))
  t.equal(sent.code, 1)
  t.match(sent.stdout, 'value "ten" is not a decimal amount')
  t.equal(kinde.calls.meter_usage, 0)
})

t.test('usage errors exit 2 and name the problem; no secret is printed', async t => {
  const dir = t.testdir()
  const file = join(dir, 'a-file')
  writeFileSync(file, '')
  await appendDeadLetter(join(dir, 'dead'), 'x.deadletter', [{
    t: 'R', id: 'x', customer: { agreementId: 'agr_1' }, feature: 'searches', value: '1', meterType: 'delta', timestamp: '2026-01-01T00:00:00.000Z', reason: 'shutdown', time: '2026-01-01T00:00:01.000Z'
  }])
  const cases: Array<[string[], RegExp]> = [
    [[], /expected one dead-letter directory, got 0/],
    [[dir, dir], /got 2/],
    [[dir, '--reason', 'lost'], /--reason must be one of shutdown, rejected, ambiguous, no_agreement, overflow, got "lost"/],
    [[dir, '--frobnicate'], /frobnicate/],
    [[file], /cannot read the dead letter in .*a-file: ENOTDIR/],
    [[join(dir, 'dead'), '--client-secret', 'very-secret-value'], /option "domain" is required/],
    [[join(dir, 'dead'), '--domain', 'http://127.0.0.1:1', '--client-id', 'id'], /option "clientSecret" is required/]
  ]
  for (const [argv, message] of cases) {
    const outcome = await replayHere(argv)
    t.equal(outcome.code, 2, argv.join(' '))
    t.match(outcome.stderr, message)
    t.match(outcome.stderr, REPLAY_USAGE)
    t.notMatch(outcome.stderr + outcome.stdout, 'very-secret-value')
  }
  const unknown = await run(process.execPath, [MAIN, 'replya'], { cwd: ROOT })
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, 'unknown command "replya"')
})

/** Starts `replay` as a child process; resolves its exit once it ends. */
function startReplay (kinde: KindeEmulator, dir: string): { pid: number, exited: Promise<number | null>, kill: () => void } {
  const child = spawn(process.execPath, [MAIN, 'replay', dir], { cwd: ROOT, env: plainEnv(kindeEnv(kinde)), stdio: 'ignore' })
  const exited = new Promise<number | null>(resolve => child.on('exit', (code, signal) => { resolve(signal === null ? code : null) }))
  return { pid: child.pid!, exited, kill: () => child.kill('SIGKILL') }
}

/** Ids marked replayed in the files of `dir`, read as a replay wrote them so far. */
function markedIds (dir: string): number {
  let marked = 0
  for (const name of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) if (line.includes('"t":"M"')) marked += (line.match(/"ids":\[([^\]]*)\]/)![1].split(',').length)
  }
  return marked
}

for (const apply of [false, true]) {
  t.test(`replay killed (SIGKILL) while Kinde ${apply ? 'has applied' : 'has not yet applied'} a send: a second run leaves the totals exact within the in-flight bound`, async t => {
    const kinde = await emulator(t)
    const dir = t.testdir()
    const served = { 'agr_1/searches': '1.25', 'agr_2/searches': '2', 'agr_3/searches': '0.75' }
    await deadLetterOf(t, kinde, dir, [
      [{ agreementId: 'agr_1' }, 'searches', 1.25],
      [{ agreementId: 'agr_2' }, 'searches', 2],
      [{ agreementId: 'agr_3' }, 'searches', 0.75]
    ])
    // The first send's answer is held back (applied first or not): the kill lands while it is under way.
    kinde.fault({ kind: 'delay', delayMs: 60_000, apply })
    const before = kinde.records.length
    const killed = startReplay(kinde, dir)
    await waitFor(() => kinde.records.length === before + 3 && markedIds(dir) === 2, 20_000)
    const held = kinde.records.slice(before).find(record => record.status === 0)!
    killed.kill()
    t.equal(await killed.exited, null, 'killed')

    const second = await run(process.execPath, [MAIN, 'replay', dir], { cwd: ROOT, env: plainEnv(kindeEnv(kinde)) })
    t.equal(second.code, 0, second.stderr)
    t.match(second.stdout, 'replayed 1 record(s)', 'only the record in flight at the kill is sent again')
    const heldPair = `${held.customer_agreement_id}/searches`
    const expected: Record<string, string> = { ...served }
    // Under the at-least-once policy, the record in flight at the kill is the bound of over-counting.
    if (apply) expected[heldPair] = String(2 * Number(served[heldPair as keyof typeof served]))
    t.same(applied(kinde, Object.keys(served)), expected)
    t.same((await readDeadLetter(dir)).records, [])
  })
}
