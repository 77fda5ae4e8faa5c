/**
 * Customer references as the app hands them in: whatever they are, a bad one is refused, counted
 * and logged as received, and never throws into the request.
 */
import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

t.test('a customer given as undefined is refused and counted like any other bad reference, never thrown', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  t.equal(core.record(undefined as any, 'searches', 1, 'GET /a'), false)
  t.equal(core.set(undefined as any, 'seats', 1, 'GET /b'), false)
  t.equal(core.stats().refused.invalidCustomer, 2)
  t.same(entries.map(entry => entry.msg?.replace(/.*, got /, '')), ['undefined (undefined)', 'undefined (undefined)'])
  t.equal((await core.flush()).sent, 0, 'nothing billed')
})

t.test('a refused string customer is quoted whole up to 64 characters, and cut with an ellipsis past them', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  const received = ['b'.repeat(64), 'c'.repeat(65)]
  received.forEach((customer, i) => core.record(customer as any, 'searches', 1, `GET /${i}`))
  t.same(entries.map(entry => entry.msg?.replace(/.*, got /, '')), [`"${'b'.repeat(64)}" (string)`, `"${'c'.repeat(64)}…" (string)`])
})
