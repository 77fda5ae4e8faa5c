/**
 * Usage that will not be delivered, as an operator sees it: counted, logged with every record,
 * and handed to `onDrop`; an `onDrop` that throws is logged too, and metering goes on.
 */
import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

t.test('an onDrop that throws is logged with its error, the reason and the records it failed to take', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const failure = new Error('replay store down')
  const core = coreOn(t, kinde, { logger, onDrop: () => { throw failure } })
  core.record({ agreementId: 'agr_1' }, 'not_in_plan', 2)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.equal((await core.flush()).sent, 1, 'metering goes on')
  const errors = entries.filter(entry => entry.level === 'error')
  t.match(errors, [
    { obj: { reason: 'rejected', count: 1, units: '2', records: [{ customer: { agreementId: 'agr_1' }, feature: 'not_in_plan', value: '2' }] }, msg: 'kinde-metering: 1 usage record(s) dropped (rejected)' },
    { msg: /^kinde-metering: onDrop threw/ }
  ])
  t.strictSame(errors[1]?.obj, { err: failure, reason: 'rejected', records: errors[0]?.obj.records }, 'the records onDrop failed to take are in its entry, as it says')
  t.same(core.stats().dropped.rejected, { records: 1, units: '2' })
})

t.test('no agreement: the warning names each customer and feature once per TTL, and a new one at once', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_free' }, { id: 'kp_other' }, { id: 'kp_new' }] })
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  const warnings = (): any[] => entries.filter(entry => entry.level === 'warn' && /no active Kinde agreement/.test(entry.msg ?? '')).map(entry => entry.obj)
  core.record({ userId: 'kp_free' }, 'searches', 1)
  core.record({ userId: 'kp_other' }, 'searches', 2)
  await core.flush()
  core.record({ userId: 'kp_free' }, 'searches', 1)
  core.record({ userId: 'kp_other' }, 'searches', 2)
  core.record({ userId: 'kp_new' }, 'searches', 3)
  await core.flush()
  t.match(warnings(), [
    { reason: 'no_agreement', records: [{ customer: { userId: 'kp_free' }, feature: 'searches', value: '1' }, { customer: { userId: 'kp_other' }, feature: 'searches', value: '2' }] },
    { reason: 'no_agreement', records: [{ customer: { userId: 'kp_new' }, feature: 'searches', value: '3' }] }
  ])
  t.same(warnings().map(warning => warning.records.length), [2, 1], 'each pair named once, in the first flush that dropped it')
  t.same(core.stats().dropped.no_agreement, { records: 5, units: '9' }, 'every drop counted, warned or not')
})
