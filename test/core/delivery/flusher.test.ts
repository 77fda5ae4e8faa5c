/**
 * When flushes run and what each one says: the interval re-armed after every flush, and the one
 * info line a flush that did something logs; how a close drains, backs off and gives up; what a
 * flush hands the store.
 */
import t from 'tap'
import { MemoryStore, type StoreContext, type StorePending, type Take, type UsageBatch, type UsageStore } from '../../../lib/index.js'
import { coreOn, emulator, flushWatch, memoryLogger } from '../../fixtures.js'

const NO_DROPS = { rejected: 0, ambiguous: 0, no_agreement: 0, overflow: 0, shutdown: 0 }

/** The default store, keeping the size of each batch the core hands it. */
class BatchLog extends MemoryStore {
  readonly batches: number[] = []
  override add (batch: UsageBatch): void {
    this.batches.push(batch.entries.length)
    super.add(batch)
  }
}

/** A store other instances share, as a Redis store is: what a close could not deliver stays in it for them. */
class FleetStore implements UsageStore {
  readonly syncInterval = Infinity
  readonly shared = true
  readonly #held = new MemoryStore()
  attach (context: StoreContext): void { this.#held.attach(context) }
  add (batch: UsageBatch): void { this.#held.add(batch) }
  async take (): Promise<Take> { return await this.#held.take() }
  pending (): StorePending { return this.#held.pending() }
  delivered (take: string, keys: readonly string[]): void { this.#held.delivered(take, keys) }
  dropped (take: string, keys: readonly string[]): void { this.#held.dropped(take, keys) }
  putBack (take: string, keys: readonly string[]): void { this.#held.putBack(take, keys) }
  settle (take: string): void { this.#held.settle(take) }
  async close (): Promise<void> {}
}

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
  t.same(await core.close(), { sent: 1, dropped: 0, droppedByReason: NO_DROPS })
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

t.test('records that overflow in one request start one early flush, not one each', async t => {
  const kinde = await emulator(t)
  const { entries, logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { maxPendingPairs: 1, logger })
  const early = flushed()
  for (let i = 1; i <= 3; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  t.match(await early, { sent: 1 })
  // A second flush started by the same request would have ended by now: without a journal, one
  // with nothing to send waits on no I/O.
  await new Promise(resolve => setImmediate(resolve))
  t.equal(entries.filter(entry => entry.msg === 'kinde-metering: flush').length, 1, 'one flush')
  t.match(core.stats(), { lastFlush: { sent: 1 }, dropped: { overflow: { records: 2 } } }, 'stats() shows the early flush and the two pairs it had no room for')
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
  t.notOk('error' in outcome, 'a flush that failed nothing carries no error')
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

t.test('a close facing a 429 pause that outlasts shutdownTimeout stops at once: one flush, the usage reported shutdown', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, shutdownTimeout: 300 })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 60 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.same(await core.close(), { sent: 0, dropped: 1, droppedByReason: { ...NO_DROPS, shutdown: 1 } })
  t.equal(entries.filter(entry => entry.msg === 'kinde-metering: flush').length, 1, 'no flush after the one that met the pause: nothing could go before the deadline')
  t.equal(kinde.calls.meter_usage, 1)
})

t.test('the first back-off of a close lasts retry.baseDelay: a close whose first flush failed delivers after it', async t => {
  const kinde = await emulator(t)
  // One attempt per flush; a first back-off of four times baseDelay would reach the deadline.
  const core = coreOn(t, kinde, { shutdownTimeout: 350, retry: { attempts: 1, baseDelay: 100, maxDelay: 1_000 } })
  kinde.fault({ kind: 'status', status: 503 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.same(await core.close(), { sent: 1, dropped: 0, droppedByReason: NO_DROPS })
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('a close reports what it dropped itself, not what earlier flushes dropped', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  core.record({ agreementId: 'agr_unknown' }, 'searches', 1)
  t.match(await core.flush(), { dropped: 1 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.same(await core.close(), { sent: 1, dropped: 0, droppedByReason: NO_DROPS })
  t.equal(core.stats().dropped.rejected.records, 1, 'stats() still counts the earlier drop')
})

t.test('a close leaves what it could not deliver in a shared store for the rest of the fleet, reporting nothing dropped', async t => {
  const kinde = await emulator(t)
  const store = new FleetStore()
  const drops: string[] = []
  const core = coreOn(t, kinde, { store, onDrop: (_records, reason) => { drops.push(reason) } })
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  t.same(await core.close(), { sent: 0, dropped: 0, droppedByReason: NO_DROPS })
  t.same(drops, [])
  t.match(store.pending(), { pairs: 1, micros: 2_000_000 }, 'the usage is still in the store')
})

t.test('a flush hands the store only what was recorded: no empty batch when nothing was', async t => {
  const kinde = await emulator(t)
  const store = new BatchLog()
  const core = coreOn(t, kinde, { store })
  await core.flush()
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.match(await core.flush(), { sent: 2 })
  await core.flush()
  t.same(store.batches, [2], 'one batch, of the two pairs recorded')
})

t.test('what a store holds after a timed sync counts against maxPendingPairs: the room left fills and flushes early', async t => {
  const kinde = await emulator(t)
  let moved: () => void
  const synced = new Promise<void>(resolve => { moved = resolve })
  /** The default store, handed what was recorded every 10 ms, as a shared store is. */
  class SyncedStore extends MemoryStore {
    override readonly syncInterval = 10
    override add (batch: UsageBatch): void {
      super.add(batch)
      moved()
    }
  }
  const { logger, flushed } = flushWatch(2_000)
  const core = coreOn(t, kinde, { store: new SyncedStore(), maxPendingPairs: 3, logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  await synced
  // The sync sets the room left once the store took the batch: on the next turn of the event loop.
  await new Promise(resolve => setImmediate(resolve))
  const early = flushed()
  core.record({ agreementId: 'agr_3' }, 'searches', 1)
  t.match(await early, { sent: 3 }, 'the third pair filled the one pair of room left and started a flush')
})
