/**
 * Injected faults (faults.ts, and how server.ts carries them out): status, reset, delay, apply,
 * seeded probability.
 */
import t from 'tap'
import type { EmulatorOptions } from '../../../lib/testing.js'
import { AGREEMENT, FEATURE, billing, start, requestToken, getToken, apiGet, sendUsage, delta, until, type Answer } from '../../helpers/emulator.js'

t.test('faults', async (t) => {
  t.test('a status fault answers once with Kinde\'s error body, then the endpoint recovers', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'status', status: 429 })
    const throttled = await sendUsage(kinde, token, delta('1'))
    t.match(throttled, { status: 429, body: { errors: [{ code: 'THROTTLED', message: String }] } })
    t.equal(throttled.headers.get('ratelimit-reset'), '1')
    t.equal(throttled.headers.get('retry-after'), null)
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1')
    t.same(kinde.injected, [{ endpoint: 'meter_usage', kind: 'status', status: 429, applied: false }])
    t.same(kinde.records.map((r) => [r.status, r.applied]), [[429, false], [200, true]])
  })

  t.test('status faults carry the configured headers, statuses and hit counts', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'status', status: 429, rateLimitReset: 7, retryAfter: 3 })
    kinde.fault({ kind: 'status', status: 503, retryAfter: 2, times: 2 })
    kinde.fault({ kind: 'status' })
    kinde.fault({ kind: 'status', status: 599 })
    const got: Answer[] = []
    for (let i = 0; i < 6; i++) got.push(await sendUsage(kinde, token, delta('1')))
    t.same(got.map((a) => a.status), [429, 503, 503, 500, 599, 200])
    t.same([got[0].headers.get('ratelimit-reset'), got[0].headers.get('retry-after')], ['7', '3'])
    t.same([got[1].headers.get('ratelimit-reset'), got[1].headers.get('retry-after')], [null, '2'])
    t.same(got[1].body, { errors: [{ code: 'SERVICE_UNAVAILABLE', message: 'Service Unavailable' }] })
    t.same(got[3].body, { errors: [{ code: 'INTERNAL_SERVER_ERROR', message: 'Internal Server Error' }] })
    t.match(got[4].body, { errors: [{ code: 'ERROR' }] })
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1')
  })

  t.test('faults target the endpoint named and can be cleared', async (t) => {
    const kinde = await start(t, { ...billing, users: [{ id: 'kp_1' }] })
    kinde.fault({ endpoint: 'token', kind: 'status', status: 502 })
    t.match(await requestToken(kinde), { status: 502, body: { errors: [{ code: 'BAD_GATEWAY' }] } })
    const token = await getToken(kinde)
    kinde.fault({ endpoint: 'user', kind: 'status', status: 504, times: 5 })
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200, 'other endpoints are unaffected')
    t.equal((await apiGet(kinde, token, '/api/v1/user?id=kp_1')).status, 504)
    kinde.clearFaults()
    t.equal((await apiGet(kinde, token, '/api/v1/user?id=kp_1')).status, 200)
    t.same(kinde.injected.map((f) => [f.endpoint, f.status]), [['token', 502], ['user', 504]])
  })

  t.test('with apply, a status fault hides a record that was applied', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'status', status: 500, apply: true, times: 2 })
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 500)
    t.equal((await sendUsage(kinde, token, delta('1', 'not_in_plan'))).status, 500)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1')
    t.same(kinde.injected.map((f) => f.applied), [true, false], 'only a valid record is applied')
  })

  t.test('a reset drops the connection before applying, or after with apply', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'reset' })
    await t.rejects(sendUsage(kinde, token, delta('1')))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
    kinde.fault({ kind: 'reset', apply: true })
    await t.rejects(sendUsage(kinde, token, delta('1')))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1', 'the client cannot tell this from the first reset')
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200, 'the next connection works')
    t.same(kinde.injected, [
      { endpoint: 'meter_usage', kind: 'reset', applied: false },
      { endpoint: 'meter_usage', kind: 'reset', applied: true },
    ])
    t.same(kinde.records.map((r) => r.status), [0, 0, 200], 'no answer was sent for the resets')
  })

  t.test('a delay answers normally once it has passed', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'delay', delayMs: 30 })
    kinde.fault({ kind: 'delay' })
    const began = performance.now()
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    t.ok(performance.now() - began >= 25, 'answered after the delay')
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 200)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2')
    t.same(kinde.injected.map((f) => [f.kind, f.applied]), [['delay', true], ['delay', true]])
  })

  t.test('a client that gives up during a delay leaves the record applied only with apply', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    const abandon = async (): Promise<void> => {
      const faultsBefore = kinde.injected.length
      const client = new AbortController()
      const pending = sendUsage(kinde, token, delta('1'), { signal: client.signal })
      await until(() => kinde.injected.length > faultsBefore) // the request is being held
      client.abort()
      await t.rejects(pending)
    }
    kinde.fault({ kind: 'delay', delayMs: 60_000, apply: true })
    await abandon()
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1', 'applied although the client saw no answer')
    kinde.fault({ kind: 'delay', delayMs: 60_000 })
    await abandon()
    await kinde.close() // lets the emulator finish with the abandoned request
    t.equal(kinde.usage(AGREEMENT, FEATURE), '1', 'an abandoned request is not applied after the delay')
    t.same(kinde.injected.map((f) => f.applied), [true, false])
    t.same(kinde.records.map((r) => r.status), [0, 0])
  })

  t.test('close() cuts a pending delay short without answering', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    kinde.fault({ kind: 'delay', delayMs: 60_000 })
    const pending = sendUsage(kinde, token, delta('1'))
    await until(() => kinde.injected.length === 1)
    await kinde.close()
    await t.rejects(pending)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
  })

  t.test('probabilistic faults repeat exactly for the same seed', async (t) => {
    const pattern = async (options: EmulatorOptions): Promise<number[]> => {
      const kinde = await start(t, { ...options, users: [{ id: 'kp_1' }] })
      const token = await getToken(kinde)
      kinde.fault({ endpoint: 'user', kind: 'status', status: 503, probability: 0.5 })
      const statuses: number[] = []
      for (let i = 0; i < 20; i++) statuses.push((await apiGet(kinde, token, '/api/v1/user?id=kp_1')).status)
      t.equal(kinde.injected.length, statuses.filter((s) => s === 503).length)
      return statuses
    }
    const first = await pattern({ seed: 42 })
    t.same(await pattern({ seed: 42 }), first)
    t.notSame(await pattern({ seed: 7 }), first)
    const unseeded = await pattern({})
    t.ok(unseeded.includes(200) && unseeded.includes(503), 'some but not all requests are hit')
    t.same(await pattern({ seed: 1 }), unseeded, 'the default seed is 1')
  })
})
