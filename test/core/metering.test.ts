/**
 * The Metering facade as a user of its extension points meets it: what a store of one's own
 * reports through the context the core lends it reaches `stats()`, the log and `onDrop`, as the
 * core's own drops do.
 */
import t from 'tap'
import { MemoryStore, RefKind, type DroppedRecord, type StoreContext } from '../../lib/index.js'
import { coreOn, emulator, memoryLogger } from '../fixtures.js'

/** A store of one's own that keeps the context the core lends it, as a shared store does to report what it cannot deliver. */
class ReportingStore extends MemoryStore {
  context: StoreContext | undefined
  override attach (context: StoreContext): void {
    this.context = context
  }
}

t.test('usage a store reports it will not deliver is counted, logged and handed to onDrop with its error', async t => {
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

  t.same(core.stats().dropped.ambiguous, { records: 2, units: '1.5' }, 'counted; a level is not an amount')
  t.same(dropped, [{
    reason: 'ambiguous',
    records: [
      { customer: { agreementId: 'agr_1' }, feature: 'searches', value: '1.5', timestamp: '2026-01-02T03:04:05.000Z', error },
      { customer: { customerId: 'cus_2' }, feature: 'seats', value: '7', timestamp: '2026-01-02T03:04:05.000Z', absolute: true, error }
    ]
  }], 'handed to onDrop, each record with the store\'s error')
  t.match(entries.filter(entry => entry.level === 'warn'), [{ obj: { reason: 'ambiguous', count: 2, units: '1.5' }, msg: 'kinde-metering: 2 usage record(s) dropped (ambiguous)' }])
  t.equal(kinde.records.length, 0, 'nothing sent')
})
