import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

/** Outlives a back-off of 1 ms after a refused token. */
const backOffPassed = async (): Promise<void> => await new Promise(resolve => setTimeout(resolve, 5))

t.test('a token refused again after a delivery went through is logged again: said once per outage, not once per process', async t => {
  const kinde = await emulator(t, { scopes: ['read:users'] })
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, retry: { baseDelay: 1, maxDelay: 1 } })
  const refusals = (): number => entries.filter(entry => entry.level === 'error' && /create:meter_usage/.test(entry.msg ?? '')).length
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1 })
  await backOffPassed()
  t.match(await core.flush(), { sent: 0, pending: 1 })
  t.equal(refusals(), 1, 'one error for the first outage, however many flushes it lasts')
  const refusal = entries.find(entry => entry.level === 'error')!
  t.match(refusal, { obj: { status: 403 }, msg: /Kinde refused the Management API token\. Authorize the M2M application/ }, 'the log says what Kinde answered and what to do')
  t.match(refusal.obj.err, { status: 403, message: /^kinde-metering: meter usage send failed with HTTP 403: / }, 'its err names the call Kinde refused')
  kinde.setScopes(['create:meter_usage'])
  await backOffPassed()
  t.match(await core.flush(), { sent: 1 })
  kinde.setScopes(['read:users'])
  kinde.expireTokens() // the next send needs a new token, which lacks the scope again
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  t.match(await core.flush(), { sent: 0, pending: 1 })
  t.equal(refusals(), 2, 'the second outage is said too')
  kinde.setScopes(['create:meter_usage'])
  await backOffPassed()
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.usage('agr_1', 'searches'), '3', 'nothing lost over two outages')
})

t.test('the back-off after refused tokens grows no longer than retry.maxDelay: fixed credentials are used within it', async t => {
  const kinde = await emulator(t, { scopes: ['read:users'] })
  const core = coreOn(t, kinde, { retry: { baseDelay: 1, maxDelay: 1 } })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  for (let refusal = 0; refusal < 10; refusal++) {
    t.match(await core.flush(), { sent: 0, pending: 1 })
    await backOffPassed()
  }
  t.equal(core.stats().failures.unauthorized, 10, 'every flush tried again once the 1 ms back-off had passed')
  kinde.setScopes(['create:meter_usage'])
  t.match(await core.flush(), { sent: 1 }, 'delivered at the first flush after the fix')
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('the back-off after refused tokens doubles at each refusal, from retry.baseDelay', async t => {
  const kinde = await emulator(t, { scopes: ['read:users'] })
  const core = coreOn(t, kinde, { shutdownTimeout: 20, retry: { baseDelay: 300, maxDelay: 10_000 } })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1 }, 'refused: sends wait 300 ms')
  await new Promise(resolve => setTimeout(resolve, 400))
  t.match(await core.flush(), { sent: 0, pending: 1 }, 'tried again after 400 ms, refused again: sends now wait 600 ms')
  const triedTwice = kinde.calls.meter_usage
  await new Promise(resolve => setTimeout(resolve, 400))
  t.match(await core.flush(), { sent: 0, pending: 1, error: { kind: 'unauthorized' } })
  t.equal(kinde.calls.meter_usage, triedTwice, '400 ms later the doubled back-off still holds the send')
  t.equal(core.stats().failures.unauthorized, 2)
})
