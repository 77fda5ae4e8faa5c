import t from 'tap'
import { coreOn, emulator, memoryLogger, setAt } from '../../fixtures.js'

/** Returns once the clock has moved on by at least a millisecond (bounded: a millisecond of spinning). */
function nextMillisecond (): number {
  const start = Date.now()
  let now = start
  while (now === start) now = Date.now()
  return now
}

t.test('usage of one agreement reached through two references goes as one record stamped with the latest usage', async t => {
  for (const order of ['agreement first', 'user first'] as const) {
    t.test(order, async t => {
      const kinde = await emulator(t, { users: [{ id: 'kp_ada', customerId: 'cus_1' }] })
      const { entries, logger } = memoryLogger()
      const core = coreOn(t, kinde, { logger })
      const first = order === 'agreement first' ? { agreementId: 'agr_1' } : { userId: 'kp_ada' }
      const second = order === 'agreement first' ? { userId: 'kp_ada' } : { agreementId: 'agr_1' }
      core.record(first, 'searches', 1)
      const latestAt = nextMillisecond()
      core.record(second, 'searches', 2)
      const flushedAt = Date.now()
      t.equal((await core.flush()).sent, 1)
      const sent = kinde.records.filter(record => record.status === 200)
      t.equal(sent.length, 1, 'one record for the agreement')
      t.equal(sent[0].meter_value, '3')
      const stamped = Date.parse(sent[0].meter_usage_timestamp!)
      t.same(entries.filter(entry => entry.level === 'warn'), [], 'a look-up that succeeded is not warned about')
      t.ok(stamped >= latestAt && stamped <= flushedAt, `stamped with the time of the later usage (${stamped - latestAt} ms after it)`)
    })
  }
})

t.test('levels of one agreement set through two references: the later one is sent, whichever reference resolves first', async t => {
  // The agreement's own reference is bound at once; the user's after its look-up.
  for (const later of ['agreement', 'user'] as const) {
    t.test(`the ${later} set it later`, async t => {
      const kinde = await emulator(t, { users: [{ id: 'kp_ada', customerId: 'cus_1' }] })
      const core = coreOn(t, kinde)
      const base = Date.now() - 10_000
      const [first, second] = later === 'agreement' ? [{ userId: 'kp_ada' }, { agreementId: 'agr_1' }] : [{ agreementId: 'agr_1' }, { userId: 'kp_ada' }]
      setAt(base, () => core.set(first, 'seats', 4))
      setAt(base + 1_000, () => core.set(second, 'seats', 7))
      t.equal((await core.flush()).sent, 1)
      t.same(kinde.records.map(record => [record.meter_value, record.meter_usage_timestamp]), [['7', new Date(base + 1_000).toISOString()]])
      t.equal(kinde.usage('agr_1', 'seats'), '7')
    })
  }
})
