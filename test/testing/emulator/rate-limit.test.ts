/**
 * The rate limiter on /api/* (rate-limit.ts).
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { AGREEMENT, FEATURE, billing, start, requestToken, getToken, sendUsage, delta } from '../../helpers/emulator.js'

t.test('rate limiter on /api/* answers 429 with RateLimit-Reset beyond its rate', async (t) => {
  const kinde = await start(t, { ...billing, rateLimit: { requestsPerSecond: 10 } })
  const token = await getToken(kinde)
  const burst = await Promise.all(Array.from({ length: 15 }, () => sendUsage(kinde, token, delta('1'))))
  const passed = burst.filter((a) => a.status === 200).length
  const throttled = burst.filter((a) => a.status === 429)
  t.ok(passed >= 10, 'a burst of one second\'s worth passes')
  t.equal(passed + throttled.length, burst.length)
  t.ok(throttled.length > 0, 'requests beyond it are throttled')
  t.match(throttled[0].body, { errors: [{ code: 'THROTTLED' }] })
  t.equal(throttled[0].headers.get('ratelimit-reset'), '1')
  t.equal(kinde.usage(AGREEMENT, FEATURE), String(passed))
  t.equal((await requestToken(kinde)).status, 200, 'the token endpoint is not limited')
  t.same(kinde.injected, [], 'throttling is not an injected fault')
  await sleep(150) // the bucket refills in real time: one request per 100 ms
  t.equal((await sendUsage(kinde, token, delta('1'))).status, 200, 'the bucket refills')
})
