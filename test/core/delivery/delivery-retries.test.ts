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

t.test('the back-off starts at retry.baseDelay and only grows towards retry.maxDelay: a small base retries within the flush', async t => {
  const kinde = await emulator(t)
  // A cap of an hour the first retries never reach: they wait up to 1 ms, then 2 ms.
  const core = coreOn(t, kinde, { flushInterval: 200, retry: { baseDelay: 1, maxDelay: 3_600_000 } })
  kinde.fault({ kind: 'status', status: 503, times: 2 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1, pending: 0 }, 'delivered by the third attempt of the same flush')
  t.equal(core.stats().retried, 2)
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

// Full jitter draws each back-off at random below its bound, so these two read the bound from
// many records at once: twelve records, each retried on its own schedule, during an outage.
t.test('during an outage the first back-off stays below retry.baseDelay: every record retries within a slot of 1.6 times it', async t => {
  const kinde = await emulator(t, { customers: 12 })
  const core = coreOn(t, kinde, { flushInterval: 800, shutdownTimeout: 20, concurrency: 12, retry: { attempts: 2, baseDelay: 500, maxDelay: 3_600_000 } })
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  for (let i = 1; i <= 12; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 12 })
  t.equal(kinde.calls.meter_usage, 24, 'each record sent, then retried once, within the flush')
})

t.test('during an outage the back-off doubles at each attempt: most records run out of the slot before their last attempt', async t => {
  const kinde = await emulator(t, { customers: 12 })
  // Back-offs below 200, 400 and 800 ms: a record fits all three in a 450 ms slot less than one time in four.
  const core = coreOn(t, kinde, { flushInterval: 450, shutdownTimeout: 20, concurrency: 12, retry: { attempts: 4, baseDelay: 200, maxDelay: 3_600_000 } })
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  for (let i = 1; i <= 12; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 12 })
  t.ok(kinde.calls.meter_usage < 12 * 4, `fewer than every attempt of every record reached Kinde (${kinde.calls.meter_usage} of 48)`)
})
