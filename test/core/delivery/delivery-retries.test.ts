import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

t.test('a send Kinde failed to apply several times is warned about once per flush, and nothing is left in flight', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, concurrency: 1 })
  for (let i = 0; i < 3; i++) kinde.fault({ kind: 'status', status: 502 })
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.match(await core.flush(), { sent: 2, pending: 0 })
  t.equal(core.stats().failures.notApplied, 3)
  t.equal(entries.filter(entry => entry.level === 'warn' && /did not apply/.test(entry.msg ?? '')).length, 1, 'one warning for the flush')
  t.equal(core.stats().inFlight, 0, 'no send counted in flight once the flush is over')
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('a retry whose back-off would end after the flush deadline waits for the next flush instead', async t => {
  const kinde = await emulator(t)
  // Full jitter over up to an hour: a back-off within the 200 ms slot is a 1-in-18,000 draw.
  const core = coreOn(t, kinde, { flushInterval: 200, retry: { baseDelay: 3_600_000, maxDelay: 3_600_000 } })
  kinde.fault({ kind: 'status', status: 503 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1 }, 'the flush ended without sleeping through the back-off')
  t.equal(kinde.calls.meter_usage, 1, 'no retry in this flush')
  t.equal(core.stats().pending.units, '1', 'the usage is kept pending')
})
