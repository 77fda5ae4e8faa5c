/**
 * The client-side budget (`maxRequestsPerSecond`), judged as Kinde sees it: a Kinde limited a
 * little above the budget never has to throttle, however many records a flush sends.
 */
import t from 'tap'
import { coreOn, emulator } from '../../fixtures.js'

t.test('past its first burst the budget refills at its rate, never faster: Kinde, limited just above it, never throttles', async t => {
  // 15 records at 5/s: a burst of 5, then 10 paced over 2 s. A budget that refilled faster would
  // send them within a fraction of a second, past the 6 (+ 6/s) Kinde allows.
  const kinde = await emulator(t, { customers: 15, rateLimit: { requestsPerSecond: 6 } })
  const core = coreOn(t, kinde, { maxRequestsPerSecond: 5, concurrency: 4 })
  for (let i = 1; i <= 15; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 15)
  t.equal(core.stats().failures.notApplied, 0, 'no send was throttled')
  t.equal(kinde.calls.meter_usage, 15, 'each record sent once')
})
