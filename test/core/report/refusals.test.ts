/**
 * Usage refused on the request path, as an operator sees it: every refusal is counted in
 * `stats().refused`, and logged once per kind, origin and feature, up to a bound, so a flood of
 * distinct bad input cannot grow memory or the log without end.
 */
import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

t.test('past 1000 distinct refusals, more are counted but no longer logged', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  const answers = new Set<boolean>()
  for (let i = 0; i < 1001; i++) answers.add(core.record({ agreementId: 'agr_1' }, `feature_${i}`, -1, 'GET /flood'))
  t.same([...answers], [false], 'every one refused')
  t.equal(core.stats().refused.invalidValue, 1001, 'every refusal counted')
  const warned = entries.filter(entry => entry.level === 'warn')
  t.equal(warned.length, 1000, 'logged up to the bound, then only counted')
  t.same(warned.at(-1)!.obj, { origin: 'GET /flood', feature: 'feature_999' })
})

t.test('on the default logger, a refusal names the request only when there is one', async t => {
  const kinde = await emulator(t)
  const warnings = t.capture(console, 'warn')
  const core = coreOn(t, kinde, { logger: undefined })
  core.record({ agreementId: 'agr_1' }, 'searches', -1, 'GET /a')
  core.record({ agreementId: 'agr_1' }, 'renders', -1, 'GET /b', 'req-7')
  t.same(warnings().map(({ args }) => args[1]), [
    "{ origin: 'GET /a', feature: 'searches' }",
    "{ origin: 'GET /b', feature: 'renders', reqId: 'req-7' }"
  ], 'no empty reqId field on the line of a refusal outside a request')
})

t.test('a refusal says what was wrong and quotes what was received, but for a mixed kind, where nothing received is wrong', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 1, 'GET /a')
  core.record({ agreementId: 'agr_1' }, 'searches', -2, 'GET /a')
  core.record({ agreementId: 'agr_1' }, '', 1, 'GET /a')
  core.record({ agreementId: 'agr_1', userId: 'kp_1' } as any, 'searches', 1, 'GET /a')
  core.set({ agreementId: 'agr_1' }, 'searches', 1, 'GET /a')
  t.same(entries.filter(entry => entry.level === 'warn').map(entry => entry.msg), [
    'kinde-metering: usage not recorded: meter value must be a finite number >= 0, got -2 (number)',
    'kinde-metering: usage not recorded: feature must be a Kinde billing feature code, a string of 1 to 256 characters, got "" (string)',
    'kinde-metering: usage not recorded: customer must name exactly one of agreementId, customerId, userId or orgCode, as a string of 1 to 256 characters, got an object with agreementId, userId',
    'kinde-metering: usage not recorded: a feature is metered either with record() (delta) or with set() (absolute) in one process, and this one already was the other way'
  ])
  t.same(core.stats().refused, { invalidValue: 1, invalidFeature: 1, invalidCustomer: 1, customerError: 0, countStatusError: 0, afterClose: 0, mixedKinds: 1 })
})

t.test('a refusal of a record() or set() called without an origin is logged with an empty one', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  core.record({ agreementId: 'agr_1' }, 'searches', -1)
  core.set({ agreementId: 'agr_1' }, 'seats', -1)
  t.strictSame(entries.filter(entry => entry.level === 'warn').map(entry => entry.obj), [
    { origin: '', feature: 'searches' },
    { origin: '', feature: 'seats' }
  ])
})
