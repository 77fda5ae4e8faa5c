/**
 * The Metering facade as its users meet it: what a store of one's own reports through the context
 * the core lends it reaches `stats()`, the log and `onDrop`, as the core's own drops do; an early
 * flush starts when `set()` (as `record()`) fills the room, and only then; `summary()` names where
 * usage is kept; after `close()` nothing more is recorded; with a journal, the `ambiguous` policy
 * decides what becomes of usage a killed process had in flight; a refusal without an origin logs
 * an empty one.
 */
import t from 'tap'
import { MemoryStore, RefKind, type DroppedRecord, type StoreContext } from '../../lib/index.js'
import { coreOn, emulator, flushWatch, memoryLogger } from '../fixtures.js'
import { deadJournal } from './journal/children.js'

/** A store of one's own that keeps the context the core lends it, as a shared store does to report what it cannot deliver. */
class ReportingStore extends MemoryStore {
  context: StoreContext | undefined
  override attach (context: StoreContext): void {
    this.context = context
  }
}

t.test('usage a store reports it will not deliver is counted, logged and handed to onDrop, with its error when it gave one', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const store = new ReportingStore()
  const dropped: Array<{ records: DroppedRecord[], reason: string }> = []
  const core = coreOn(t, kinde, { store, logger, onDrop: (records, reason) => { dropped.push({ records, reason }) } })
  const at = Date.parse('2026-01-02T03:04:05.000Z')
  const error = { message: 'taken by an instance that stopped mid-flush: it may have been delivered' }
  store.context!.drop([
    { kind: RefKind.Agreement, id: 'agr_1', feature: 'searches', micros: 1_500_000, at },
    { kind: RefKind.Customer, id: 'cus_2', feature: 'seats', micros: 7_000_000, at, absolute: true }
  ], 'ambiguous', error)
  store.context!.drop([{ kind: RefKind.User, id: 'kp_3', feature: 'searches', micros: 2_000_000, at }], 'shutdown')

  t.same(core.stats().dropped.ambiguous, { records: 2, units: '1.5' }, 'counted; a level is not an amount')
  t.same(core.stats().dropped.shutdown, { records: 1, units: '2' })
  // Strictly: a record holds only the fields that say something, no key left undefined.
  t.strictSame(dropped, [{
    reason: 'ambiguous',
    records: [
      { customer: { agreementId: 'agr_1' }, feature: 'searches', value: '1.5', timestamp: '2026-01-02T03:04:05.000Z', error },
      { customer: { customerId: 'cus_2' }, feature: 'seats', value: '7', timestamp: '2026-01-02T03:04:05.000Z', absolute: true, error }
    ]
  }, {
    reason: 'shutdown',
    records: [{ customer: { userId: 'kp_3' }, feature: 'searches', value: '2', timestamp: '2026-01-02T03:04:05.000Z' }]
  }], 'handed to onDrop, each record with the store\'s error when it gave one')
  t.match(entries.filter(entry => entry.level === 'warn'), [{ obj: { reason: 'ambiguous', count: 2, units: '1.5' }, msg: 'kinde-metering: 2 usage record(s) dropped (ambiguous)' }])
  t.equal(kinde.records.length, 0, 'nothing sent')
})

t.test('a set() that fills maxPendingPairs starts an early flush on its own, after the call, and frees room', async t => {
  const kinde = await emulator(t)
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { maxPendingPairs: 2, logger })
  core.set({ agreementId: 'agr_1' }, 'seats', 3)
  t.equal(core.set({ agreementId: 'agr_2' }, 'seats', 4), true)
  t.equal(kinde.calls.meter_usage, 0, 'nothing is sent inside the call that filled the room')
  const early = await flushed()
  t.equal(early.sent, 2, 'the early flush delivered both levels')
  t.equal(kinde.usage('agr_2', 'seats'), '4')
  t.ok(core.set({ agreementId: 'agr_3' }, 'seats', 5))
  t.same(core.stats().pending, { pairs: 1, units: '0' }, 'a new pair has room again')
  t.equal(core.stats().dropped.overflow.records, 0)
})

t.test('summary() names where usage goes and how it is kept: the journal\'s directory with one, false without; never a credential', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  const journaled = coreOn(t, kinde, { journal: { dir }, flushInterval: 30_000 })
  await journaled.ready()
  t.same(journaled.summary(), { domain: kinde.url, flushInterval: 30_000, store: 'MemoryStore', journal: dir })
  t.same(coreOn(t, kinde, { store: new ReportingStore() }).summary(), { domain: kinde.url, flushInterval: 3_600_000, store: 'ReportingStore', journal: false })
  t.notMatch(JSON.stringify(journaled.summary()), kinde.clientSecret)
})

t.test('after close, record() and set() answer false and are counted; nothing more reaches Kinde', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  t.equal(core.record({ agreementId: 'agr_1' }, 'searches', 1), true)
  t.same(await core.close(), { sent: 1, dropped: 0, droppedByReason: { rejected: 0, ambiguous: 0, no_agreement: 0, overflow: 0, shutdown: 0 } })
  t.equal(core.record({ agreementId: 'agr_1' }, 'searches', 1), false)
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', 1), false)
  t.equal(core.stats().refused.afterClose, 2)
  t.same(core.stats().pending, { pairs: 0, units: '0' })
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('below maxPendingPairs, record() and set() start no flush of their own: a pair is one record per flush', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { maxPendingPairs: 3 })
  core.set({ agreementId: 'agr_1' }, 'seats', 1)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  // After the calls' turn of the event loop, as after a request: an early flush would start here.
  await new Promise(resolve => setImmediate(resolve))
  core.set({ agreementId: 'agr_1' }, 'seats', 2)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.equal((await core.flush()).sent, 2)
  t.same(kinde.records.map(record => [record.billing_feature_code, record.meter_value]).sort(), [['searches', '2'], ['seats', '2']],
    'one record per pair, sent by the flush asked for')
})

t.test('with a journal and the default ambiguous: retry, usage a killed process had in flight is sent again, not reported dropped', async t => {
  const dir = t.testdir()
  await deadJournal(t, dir, [
    { append: [[0, 'agr_1', 'searches', 4_000_000, 1000]] },
    { take: [[0, 'agr_1', 'searches', 4_000_000, 1000]] },
    // Being sent when the process was killed: Kinde may or may not have applied it.
    { send: [0] }
  ])
  const kinde = await emulator(t)
  const dropped: string[] = []
  const core = coreOn(t, kinde, { journal: { dir }, onDrop: (_, reason) => { dropped.push(reason) } })
  await core.ready()
  t.match(core.stats(), { pending: { pairs: 1, units: '4' }, journal: { recovered: { ambiguous: { records: 1, units: '4' } } } },
    'counted as ambiguous, and pending')
  t.equal((await core.flush()).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '4', 'sent again')
  t.same(dropped, [], 'nothing handed to onDrop')
  t.same(core.stats().dropped.ambiguous, { records: 0, units: '0' })
})

t.test('record() and set() called without an origin log a refusal with an empty origin', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  t.equal(core.record({ agreementId: 'agr_1' }, 'searches', -1), false)
  t.equal(core.set({ agreementId: 'agr_1' }, 'seats', -1), false)
  t.strictSame(entries.filter(entry => entry.level === 'warn').map(entry => entry.obj), [{ origin: '', feature: 'searches' }, { origin: '', feature: 'seats' }])
})
