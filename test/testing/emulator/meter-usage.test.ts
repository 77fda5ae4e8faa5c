/**
 * Meter usage (routes/meter-usage.ts): validation as Kinde documents it, exact sums, absolute and
 * delta, what a test reads back.
 */
import t from 'tap'
import { once } from 'node:events'
import { connect } from 'node:net'
import { Agent as UndiciAgent, request } from 'undici'
import { AGREEMENT, FEATURE, start, getToken, sendUsage, delta } from '../../helpers/emulator.js'

t.test('meter usage', async (t) => {
  t.test('sums decimal deltas exactly', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    const ok = await sendUsage(kinde, token, delta('0.1', 'storage_gb'))
    t.same(ok, { status: 200, headers: ok.headers, body: { message: 'Success', code: 'OK' } })
    await sendUsage(kinde, token, delta('0.2', 'storage_gb'))
    t.equal(kinde.usage(AGREEMENT, 'storage_gb'), '0.3')
    await sendUsage(kinde, token, delta('0.000000000000000000001', 'storage_gb'))
    t.equal(kinde.usage(AGREEMENT, 'storage_gb'), '0.300000000000000000001')
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0', 'other features are untouched')
    t.equal(kinde.usage('agreement_unknown', FEATURE), '0')
  })

  t.test('300 deltas of "0.1" make exactly "30", where floating point drifts', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    // undici's request() rather than fetch(): four times faster, which keeps this volume quick.
    const agent = new UndiciAgent({ connections: 16 })
    t.teardown(() => agent.close())
    const body = JSON.stringify(delta('0.1'))
    const send = async (): Promise<number> => {
      const { statusCode, body: answerBody } = await request(`${kinde.url}/api/v1/billing/meter_usage`, {
        method: 'POST', dispatcher: agent, body,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      })
      await answerBody.dump()
      return statusCode
    }
    const statuses: number[] = []
    const lanes = Array.from({ length: 16 }, async (_, lane) => {
      for (let i = lane; i < 300; i += 16) statuses.push(await send())
    })
    await Promise.all(lanes)
    t.same(new Set(statuses), new Set([200]))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '30')
    t.not(Array.from({ length: 300 }).reduce((sum: number) => sum + 0.1, 0), 30, 'a float sum would be off')
    t.equal(kinde.records.length, 300)
  })

  t.test('an absolute value replaces the sum, later deltas add to it, and a missing type adds', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    await sendUsage(kinde, token, delta('5'))
    await sendUsage(kinde, token, { ...delta('2'), meter_type_code: 'absolute' })
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2')
    await sendUsage(kinde, token, delta('0.50'))
    t.equal(kinde.usage(AGREEMENT, FEATURE), '2.5')
    const { meter_type_code: _, ...untyped } = delta('007')
    await sendUsage(kinde, token, untyped)
    t.equal(kinde.usage(AGREEMENT, FEATURE), '9.5')
    await sendUsage(kinde, token, { ...delta('0.000'), meter_type_code: 'absolute' })
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
  })

  t.test('accepts ISO 8601 timestamps, including Kinde\'s hour-only offset', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    for (const timestamp of ['2024-11-18T13:32:03+11', '2024-11-18T02:32:03.123Z', '2024-11-18T13:32+11:00']) {
      t.equal((await sendUsage(kinde, token, { ...delta('1'), meter_usage_timestamp: timestamp })).status, 200, timestamp)
    }
    t.equal(kinde.usage(AGREEMENT, FEATURE), '3')
  })

  t.test('rejects invalid records with 400 naming the problem, applying nothing', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    const cases: Array<[unknown, string, string]> = [
      ['{"customer_agreement_id": ', 'INVALID_REQUEST', 'JSON object'],
      ['null', 'INVALID_REQUEST', 'JSON object'],
      ['[1]', 'INVALID_REQUEST', 'JSON object'],
      ['5', 'INVALID_REQUEST', 'JSON object'],
      [{}, 'INVALID_REQUEST', 'customer_agreement_id'],
      [{ ...delta('1'), customer_agreement_id: 42 }, 'INVALID_REQUEST', 'customer_agreement_id'],
      [{ ...delta('1'), billing_feature_code: undefined }, 'INVALID_REQUEST', 'billing_feature_code'],
      [{ ...delta('1'), meter_value: 1 }, 'INVALID_REQUEST', 'meter_value'],
      ...['1e-7', '', '-1', '1.', '.5', ' 1', '0x10'].map((value): [unknown, string, string] =>
        [delta(value), 'INVALID_REQUEST', 'meter_value']),
      ...['yesterday', '2024-13-45T00:00:00Z', '2024-11-18T13:32:03', 1731900000].map((timestamp): [unknown, string, string] =>
        [{ ...delta('1'), meter_usage_timestamp: timestamp }, 'INVALID_REQUEST', 'meter_usage_timestamp']),
      [{ ...delta('1'), meter_type_code: 'total' }, 'INVALID_REQUEST', 'meter_type_code'],
      [{ ...delta('1'), customer_agreement_id: 'agreement_unknown' }, 'AGREEMENT_NOT_FOUND', 'agreement_unknown'],
      [{ ...delta('1'), customer_agreement_id: 'agreement_old' }, 'AGREEMENT_EXPIRED', 'agreement_old'],
      [delta('1', 'not_in_plan'), 'FEATURE_NOT_FOUND', 'not_in_plan'],
    ]
    for (const [record, code, mentions] of cases) {
      const got = await sendUsage(kinde, token, record)
      t.equal(got.status, 400, JSON.stringify(record))
      t.equal(got.body.errors[0].code, code, JSON.stringify(record))
      t.match(got.body.errors[0].message, mentions, JSON.stringify(record))
    }
    t.equal(kinde.usage(AGREEMENT, FEATURE), '0')
    t.equal(kinde.records.length, cases.length - 4, 'bodies that are not JSON objects are not records')
    t.ok(kinde.records.every((r) => !r.applied && r.status === 400))
  })

  t.test('records every request as received, in order, with its outcome', async (t) => {
    const kinde = await start(t)
    const token = await getToken(kinde)
    await sendUsage(kinde, token, { ...delta('1.5'), meter_usage_timestamp: '2024-11-18T02:32:03Z' })
    await sendUsage(kinde, token, { customer_agreement_id: AGREEMENT, meter_value: 2 })
    t.same(kinde.records, [
      { customer_agreement_id: AGREEMENT, billing_feature_code: FEATURE, meter_value: '1.5', meter_usage_timestamp: '2024-11-18T02:32:03Z', meter_type_code: 'delta', applied: true, status: 200 },
      { customer_agreement_id: AGREEMENT, billing_feature_code: '', meter_value: '2', applied: false, status: 400 },
    ])
    t.equal(kinde.calls.meter_usage, 2)
  })

  t.test('ignores a request whose client disconnects before sending the whole body', async (t) => {
    const kinde = await start(t)
    const socket = connect(Number(new URL(kinde.url).port), '127.0.0.1')
    socket.write('POST /api/v1/billing/meter_usage HTTP/1.1\r\nHost: kinde\r\nContent-Type: application/json\r\n' +
      'Content-Length: 500\r\nExpect: 100-continue\r\n\r\n')
    await once(socket, 'data') // "100 Continue": the emulator has taken the request
    socket.write('{"customer_agreement_id":')
    socket.destroy()
    await kinde.close()
    t.equal(kinde.calls.meter_usage, 1)
    t.same(kinde.records, [])
  })
})
