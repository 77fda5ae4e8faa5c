/**
 * When flushes run and what each one says: the interval re-armed after every flush, and the one
 * info line a flush that did something logs.
 */
import t from 'tap'
import { coreOn, emulator, flushWatch, memoryLogger } from '../../fixtures.js'

t.test('the interval flushes again after each flush, not once', async t => {
  const kinde = await emulator(t)
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { flushInterval: 20, logger })
  for (let round = 1; round <= 3; round++) {
    core.record({ agreementId: 'agr_1' }, 'searches', round)
    t.match(await flushed(), { sent: 1 }, `interval flush ${round}`)
  }
  t.equal(kinde.usage('agr_1', 'searches'), '6')
})

t.test('a flush that sent or dropped logs one info line saying what; a flush that did nothing logs none', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  const infos = (): Array<{ obj: any, msg?: string }> => entries.filter(entry => entry.level === 'info')
  await core.flush()
  t.same(infos(), [], 'nothing pending: nothing said')
  core.record({ agreementId: 'agr_1' }, 'searches', 1.25)
  core.record({ agreementId: 'agr_2' }, 'searches', 2)
  core.set({ agreementId: 'agr_1' }, 'seats', 10)
  await core.flush()
  const figures = (entry: { obj: any }): unknown => ({ ...entry.obj, durationMs: typeof entry.obj.durationMs })
  t.same(infos().map(figures), [{ records: 3, units: '3.25', dropped: 0, pending: 0, durationMs: 'number' }], 'units are the deltas: a level set is no amount')
  core.record({ agreementId: 'agr_unknown' }, 'searches', 1)
  await core.flush()
  t.same(figures(infos()[1]), { records: 0, units: '0', dropped: 1, pending: 0, durationMs: 'number' }, 'a flush that only dropped says so')
  t.same(infos().map(entry => entry.msg), ['kinde-metering: flush sent 3 record(s)', 'kinde-metering: flush sent 0 record(s), dropped 1'])
})

t.test('a close that meets a short outage backs off briefly and delivers once Kinde is back', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { shutdownTimeout: 5_000 })
  // Every attempt of the close's first flush fails; the next flush finds Kinde back.
  kinde.fault({ kind: 'status', status: 503, times: 4 })
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  t.same(await core.close(), { sent: 1, dropped: 0, droppedByReason: { rejected: 0, ambiguous: 0, no_agreement: 0, overflow: 0, shutdown: 0 } })
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('between flushes of a close that deliver nothing, the close backs off: an outage sees a few sends, not a stream', async t => {
  const kinde = await emulator(t)
  // One attempt per flush, and 100 ms between flushes: about four flushes fit in 350 ms.
  const core = coreOn(t, kinde, { shutdownTimeout: 350, retry: { attempts: 1, baseDelay: 100, maxDelay: 100 } })
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.close(), { sent: 0, droppedByReason: { shutdown: 1 } })
  t.ok(kinde.calls.meter_usage <= 5, `${kinde.calls.meter_usage} sends during the close`)
})

t.test('the back-off between flushes of a close is cut to the time left: the close ends at shutdownTimeout', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { shutdownTimeout: 200, retry: { attempts: 1, baseDelay: 3_000, maxDelay: 3_000 } })
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const started = Date.now()
  t.match(await core.close(), { sent: 0, droppedByReason: { shutdown: 1 } })
  const took = Date.now() - started
  t.ok(took < 1_500, `closed after ${took} ms, not after the 3 s back-off`)
})

t.test('at maxPendingPairs an early flush starts each time the room fills, not only the first time', async t => {
  const kinde = await emulator(t, { customers: 4 })
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { maxPendingPairs: 2, logger })
  for (const pair of [[1, 2], [3, 4]]) {
    const early = flushed()
    for (const i of pair) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
    t.match(await early, { sent: 2 }, `the room filled by agr_${pair[0]} and agr_${pair[1]} was freed`)
  }
  t.equal(core.stats().dropped.overflow.records, 0)
  t.equal(kinde.usage('agr_4', 'searches'), '1')
})

t.test('a flush reports when it started and how long it took, within the time measured around it', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ kind: 'delay', delayMs: 30 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const before = Date.now()
  const outcome = await core.flush()
  const after = Date.now()
  t.ok(outcome.startedAt >= before && outcome.startedAt <= after, 'started within the call')
  t.ok(outcome.durationMs >= 30 && outcome.durationMs <= after - before, `${outcome.durationMs} ms: at least Kinde's 30 ms, at most the call's ${after - before} ms`)
  t.same(core.stats().lastFlush, outcome)
})

t.test('a close pauses only after flushes that delivered nothing: after one that delivered, the next starts at once', async t => {
  const kinde = await emulator(t, { customers: 2 })
  // One attempt per flush; a pause of the close would last a second or more.
  const core = coreOn(t, kinde, { concurrency: 1, shutdownTimeout: 5_000, retry: { attempts: 1, baseDelay: 2_000, maxDelay: 2_000 } })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  // The close's first flush delivers one record and fails the other; the second flush delivers it.
  kinde.fault({ kind: 'status', status: 503 })
  const started = Date.now()
  t.match(await core.close(), { sent: 2, dropped: 0 })
  const took = Date.now() - started
  t.ok(took < 500, `closed in ${took} ms, without a pause`)
})

t.test('a core with neither a journal nor a shared store arms no sync timer: Node warns of no timer overflow', async t => {
  const kinde = await emulator(t)
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  coreOn(t, kinde)
  // Node emits its warnings on the next tick.
  await new Promise(resolve => setImmediate(resolve))
  t.same(warnings.filter(warning => warning.name === 'TimeoutOverflowWarning').map(warning => warning.message), [])
})
