import t from 'tap'
import type { DroppedRecord, DropReason } from '../../../lib/index.js'
import { MemoryStore } from '../../../lib/core/store/usage-store.js'
import { coreOn, emulator, flushWatch, memoryLogger } from '../../fixtures.js'

type Drop = { records: DroppedRecord[], reason: DropReason }

t.test('sends that were not applied (429, 502, 503, resets before writing) are retried; totals exact', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { concurrency: 1 })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.01 })
  kinde.fault({ kind: 'status', status: 502 })
  kinde.fault({ kind: 'status', status: 503, retryAfter: 0 })
  core.record({ agreementId: 'agr_1' }, 'searches', 3)
  const outcome = await core.flush()
  t.equal(outcome.sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.equal(kinde.calls.meter_usage, 4)
  const stats = core.stats()
  t.equal(stats.failures.notApplied, 3)
  t.equal(stats.retried, 3)
  t.same(stats.sent, { records: 1, units: '3' })
})

t.test('connection refused: every attempt counted as not applied, the usage kept pending', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { accessToken: 'static-token', domain: 'http://127.0.0.1:1', logger, shutdownTimeout: 20 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.pending, 1)
  t.equal(core.stats().failures.notApplied, 4, 'every attempt of the flush')
  t.ok(entries.some(entry => entry.level === 'warn' && /did not apply/.test(entry.msg ?? '')))
  t.notOk(JSON.stringify(entries).includes('static-token'), 'the token never reaches the logs')
})

t.test('on 429 every send waits until RateLimit-Reset has passed, not only the throttled one', async t => {
  const kinde = await emulator(t, { customers: 8 })
  const core = coreOn(t, kinde, { concurrency: 2 })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.3 })
  for (let i = 1; i <= 8; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 8)
  t.ok(outcome.durationMs >= 300, `the flush waited out the reset (${outcome.durationMs} ms)`)
  t.equal(kinde.calls.meter_usage, 9, 'one retry, of the throttled record')
  // The other worker may have sent once more before the 429 came back; after it, nothing went
  // until the pause was over, when the throttled record's retry went with the rest.
  const throttled = kinde.records.findIndex(record => record.status === 429)
  const retry = kinde.records.findIndex((record, i) => i > throttled && record.customer_agreement_id === kinde.records[throttled].customer_agreement_id)
  t.ok(retry - throttled - 1 <= 2, `at most the sends already under way went between the 429 and the end of its pause (${retry - throttled - 1})`)
})

t.test('the client-side budget paces sends', async t => {
  const kinde = await emulator(t, { customers: 30, rateLimit: { requestsPerSecond: 25 } })
  const core = coreOn(t, kinde, { maxRequestsPerSecond: 20 })
  for (let i = 1; i <= 30; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 30)
  t.equal(core.stats().failures.notApplied, 0, 'Kinde, limited to 25/s, never had to throttle')
  t.ok(outcome.durationMs >= 400, `a second's burst went at once, the rest was paced (${outcome.durationMs} ms)`)
})

t.test('400: reported with Kinde\'s error body, reason rejected, never retried', async t => {
  const kinde = await emulator(t)
  const drops: Drop[] = []
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, onDrop: (records, reason) => drops.push({ records, reason }) })
  core.record({ agreementId: 'agr_unknown' }, 'searches', 2)
  core.record({ agreementId: 'agr_1' }, 'not_in_plan', 1)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 1)
  t.equal(outcome.dropped, 2)
  t.equal(kinde.calls.meter_usage, 3, 'no retries')
  t.same(drops.map(drop => [drop.reason, drop.records.length]), [['rejected', 2]], 'one report per reason per flush')
  const unknown = drops.flatMap(drop => drop.records).find(record => record.agreementId === 'agr_unknown')!
  t.match(unknown, { customer: { agreementId: 'agr_unknown' }, feature: 'searches', value: '2', error: { status: 400, body: { errors: [{ code: 'AGREEMENT_NOT_FOUND' }] } } })
  t.same(core.stats().dropped.rejected, { records: 2, units: '3' })
  t.equal(core.stats().failures.rejected, 2)
  t.equal(entries.filter(entry => entry.level === 'error' && entry.obj.reason === 'rejected').length, 1, 'one log line for the flush')
  t.equal(core.stats().pending.pairs, 0)
})

t.test('an expired token is refreshed once and the send goes through', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { concurrency: 4 })
  for (let i = 1; i <= 3; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  await core.flush()
  t.equal(kinde.calls.token, 1, 'one token for many concurrent sends')
  kinde.expireTokens()
  for (let i = 1; i <= 3; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 3)
  t.equal(kinde.calls.token, 2, 'refreshed once, however many sends saw the 401')
  t.equal(core.stats().tokensFetched, 2)
  for (let i = 1; i <= 3; i++) t.equal(kinde.usage(`agr_${i}`, 'searches'), '2')
})

t.test('a token past its lifetime is replaced before it is used', async t => {
  const kinde = await emulator(t, { tokenTtlSeconds: 0.05 })
  const core = coreOn(t, kinde)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  await core.flush()
  await new Promise(resolve => setTimeout(resolve, 50)) // outlive the 50 ms token
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  await core.flush()
  t.equal(kinde.calls.token, 2)
  t.equal(kinde.records.filter(record => record.status === 401).length, 0, 'never sent with an expired token')
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('403 without create:meter_usage: usage stays pending, the scope is named, sends back off', async t => {
  const kinde = await emulator(t, { scopes: ['read:users'] })
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, concurrency: 1, retry: { baseDelay: 60_000 } })
  core.record({ agreementId: 'agr_1' }, 'searches', 4)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 0)
  t.equal(outcome.pending, 2)
  t.equal(kinde.calls.meter_usage, 2, 'one send, one after a token refresh; then the backoff holds the rest')
  t.equal(kinde.calls.token, 2)
  const errors = entries.filter(entry => entry.level === 'error')
  t.equal(errors.length, 1)
  t.match(errors[0].msg, /create:meter_usage/)
  t.notOk(JSON.stringify(entries).includes(kinde.clientSecret), 'the secret never reaches the logs')
  t.equal(core.stats().failures.unauthorized, 1)
  t.equal(core.stats().pending.units, '5')
  t.match(outcome.error, { kind: 'unauthorized', message: /HTTP 403/ })
  t.match(errors[0].obj.err, { status: 403, message: /HTTP 403/ }, 'Kinde\'s answer is logged as an error, under err')
  const heldBack = await core.flush()
  t.equal(heldBack.pending, 2, 'still backing off')
  t.match(heldBack.error, { kind: 'unauthorized' }, 'and the outcome says which failure holds the usage back')
  t.equal(kinde.calls.meter_usage, 2)
})

t.test('after credentials are fixed the pending usage is delivered', async t => {
  const kinde = await emulator(t, { scopes: ['read:users'] })
  const core = coreOn(t, kinde, { retry: { baseDelay: 1, maxDelay: 1 } })
  core.record({ agreementId: 'agr_1' }, 'searches', 4)
  await core.flush()
  kinde.setScopes(['create:meter_usage'])
  await new Promise(resolve => setTimeout(resolve, 2)) // outlive the 1 ms backoff
  const outcome = await core.flush()
  t.equal(outcome.sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '4')
})

t.test('bad credentials: the token error keeps usage pending and never shows the secret', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { clientSecret: 'wrong-secret-value', logger, shutdownTimeout: 20 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.match(outcome, { sent: 0, pending: 1, dropped: 0, deliveredHere: true, error: { kind: 'credentials', message: /invalid_client/ } },
    'the outcome says the usage stayed pending because the credentials were refused')
  t.equal(core.stats().failures.unauthorized, 1)
  const heldBack = await core.flush()
  t.match(heldBack, { sent: 0, error: { kind: 'credentials' } }, 'the next flush names it too')
  const error = entries.find(entry => entry.level === 'error')
  t.type(error?.obj.err, Error, 'logged under pino\'s err, with its stack')
  t.match(error?.obj.err.message, /invalid_client/)
  t.match(error?.obj.err.stack, /TokenError/)
  t.match(error?.msg, /clientId and clientSecret/, 'the hint names the credentials, not a scope')
  await core.close()
  t.equal(entries.filter(entry => entry.level === 'error' && entry.obj.err !== undefined).length, 1, 'said once, not at every retry of the close')
  t.notOk(JSON.stringify(entries).includes('wrong-secret-value'))
})

t.test('ambiguous failures follow the ambiguous option', async t => {
  t.test("'retry' (default): at-least-once, counted as ambiguous", async t => {
    const kinde = await emulator(t)
    const core = coreOn(t, kinde)
    kinde.fault({ kind: 'status', status: 500, apply: true })
    kinde.fault({ kind: 'reset', apply: true })
    kinde.fault({ kind: 'status', status: 504 })
    core.record({ agreementId: 'agr_1' }, 'searches', 1)
    await core.flush()
    t.equal(core.stats().failures.ambiguous, 3)
    t.equal(kinde.usage('agr_1', 'searches'), '3', 'the two applied ambiguous failures counted again: the documented over-count')
  })
  t.test("'drop': at-most-once, reported with reason ambiguous", async t => {
    const kinde = await emulator(t)
    const drops: Drop[] = []
    const core = coreOn(t, kinde, { ambiguous: 'drop', onDrop: (records, reason) => drops.push({ records, reason }) })
    kinde.fault({ kind: 'status', status: 504 })
    core.record({ agreementId: 'agr_1' }, 'searches', 2)
    const outcome = await core.flush()
    t.equal(outcome.dropped, 1)
    t.equal(kinde.calls.meter_usage, 1, 'never retried')
    t.equal(drops[0].reason, 'ambiguous')
    t.match(drops[0].records[0], { value: '2', error: { status: 504 } })
    t.same(core.stats().dropped.ambiguous, { records: 1, units: '2' })
  })
  t.test('a timeout after the request was written is ambiguous', async t => {
    const kinde = await emulator(t)
    const drops: Drop[] = []
    const core = coreOn(t, kinde, { ambiguous: 'drop', requestTimeout: 50, onDrop: (records, reason) => drops.push({ records, reason }) })
    await core.flush() // no usage yet: nothing is sent
    core.record({ agreementId: 'agr_1' }, 'searches', 1)
    kinde.fault({ kind: 'delay', delayMs: 3_000, apply: true })
    await core.flush()
    t.equal(drops[0]?.reason, 'ambiguous')
    t.match(drops[0].records[0].error?.message, /silent for 50 ms \(TIMEOUT\)/)
    t.equal(kinde.usage('agr_1', 'searches'), '1', 'it was applied: dropping it was right')
  })
})

t.test('a Kinde outage of several flushes, then recovery: everything delivered, one record per pair', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  const recordedAt = Date.now()
  let firstFlushAt = 0
  for (let flush = 0; flush < 4; flush++) {
    for (let i = 1; i <= 3; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 0.5)
    const outcome = await core.flush()
    firstFlushAt ||= outcome.startedAt
    t.equal(outcome.pending, 3, 'pending stays one entry per pair')
  }
  t.equal(core.stats().pending.pairs, 3)
  t.equal(core.stats().pending.units, '6')
  // The stats read the clock once, between these two reads: the age is bounded on both sides.
  const readFrom = Date.now()
  const age = core.stats().oldestPendingAgeMs
  const readTo = Date.now()
  t.ok(age > 0 && age >= readFrom - firstFlushAt && age <= readTo - recordedAt, `the oldest pending usage is as old as its first record (${age} ms)`)
  kinde.clearFaults()
  const before = kinde.records.length
  const outcome = await core.flush()
  t.equal(outcome.sent, 3)
  t.equal(kinde.records.length - before, 3, 'one record per pair after the outage')
  for (let i = 1; i <= 3; i++) t.equal(kinde.usage(`agr_${i}`, 'searches'), '2')
  t.equal(core.stats().oldestPendingAgeMs, 0)
})

t.test('at maxPendingPairs an early flush starts on its own, after the request, and frees room', async t => {
  const kinde = await emulator(t, { customers: 5 })
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { maxPendingPairs: 2, logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.equal(kinde.calls.meter_usage, 0, 'nothing is sent inside the request that filled the room')
  const early = await flushed()
  t.equal(early.sent, 2, 'the early flush delivered both pairs')
  t.equal(kinde.usage('agr_1', 'searches'), '1')
  t.ok(core.record({ agreementId: 'agr_3' }, 'searches', 1))
  t.equal(core.stats().pending.pairs, 1, 'a new pair has room again')
  t.equal(core.stats().dropped.overflow.records, 0)
})

t.test('at maxPendingPairs new pairs overflow, existing pairs keep summing', async t => {
  const kinde = await emulator(t, { customers: 5 })
  const drops: Drop[] = []
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { maxPendingPairs: 2, logger, onDrop: (records, reason) => drops.push({ records, reason }) })
  kinde.fault({ kind: 'status', status: 503, times: Infinity }) // the early flush cannot free room
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.ok(core.record({ agreementId: 'agr_3' }, 'searches', 1), 'recording never fails the request')
  core.record({ agreementId: 'agr_3' }, 'searches', 1)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.equal(core.stats().pending.pairs, 2)
  await core.flush() // the early flush (scheduled) and this one both fail
  core.record({ agreementId: 'agr_4' }, 'searches', 5)
  kinde.clearFaults()
  await core.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  t.equal(kinde.usage('agr_2', 'searches'), '1')
  t.equal(kinde.usage('agr_3', 'searches'), '0')
  const overflow = drops.filter(drop => drop.reason === 'overflow')
  t.same(overflow.flatMap(drop => drop.records.map(record => [record.customer, record.value])), [
    [{ agreementId: 'agr_3' }, '2'], [{ agreementId: 'agr_4' }, '5']])
  t.same(core.stats().dropped.overflow, { records: 2, units: '7' })
  t.equal(entries.filter(entry => entry.obj.reason === 'overflow').length, 2, 'logged once per flush')
})

t.test('close() under a persistent 429 stops at shutdownTimeout and reports exactly what remains', async t => {
  const kinde = await emulator(t)
  const drops: Drop[] = []
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { shutdownTimeout: 300, logger, onDrop: (records, reason) => drops.push({ records, reason }) })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.05, times: Infinity })
  kinde.fault({ endpoint: 'user', kind: 'status', status: 429, rateLimitReset: 0.05, times: Infinity })
  core.record({ agreementId: 'agr_1' }, 'searches', 1.5)
  core.record({ userId: 'kp_unresolved' }, 'searches', 2)
  const started = Date.now()
  const closing = core.close()
  t.equal(core.close(), closing, 'idempotent')
  const outcome = await closing
  const took = Date.now() - started
  t.ok(took >= 200 && took < 2_000, `kept trying until about the timeout, then stopped (${took} ms)`)
  t.same(outcome, { sent: 0, dropped: 2, droppedByReason: { rejected: 0, ambiguous: 0, no_agreement: 0, overflow: 0, shutdown: 2 } })
  t.equal(drops.length, 1)
  t.equal(drops[0].reason, 'shutdown')
  t.same(drops[0].records.map(record => [record.customer, record.feature, record.value]).sort(), [
    [{ agreementId: 'agr_1' }, 'searches', '1.5'], [{ userId: 'kp_unresolved' }, 'searches', '2']].sort())
  const logged = entries.find(entry => entry.level === 'error' && entry.obj.reason === 'shutdown')
  t.equal(logged?.obj.records.length, 2, 'the error log carries every record')
  t.same(core.stats().dropped.shutdown, { records: 2, units: '3.5' })
  t.equal(core.stats().pending.pairs, 0)
})

t.test('onDrop that throws is logged with the records, and metering goes on', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger, onDrop: () => { throw new Error('replay store down') } })
  core.record({ agreementId: 'agr_unknown' }, 'searches', 1)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 1)
  t.ok(entries.some(entry => entry.level === 'error' && /onDrop threw/.test(entry.msg ?? '')))
})

t.test('flushes never overlap: one called during another waits and includes newer usage', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ kind: 'delay', delayMs: 50 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const first = core.flush()
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const second = core.flush()
  const third = core.flush()
  t.equal(second, third, 'callers during a flush share the next one')
  t.equal((await first).sent, 1)
  t.equal((await second).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  t.equal(core.stats().lastFlush?.sent, 1)
})

t.test('a meter value of 0 is accepted and bills nothing: no pair pending, no record sent', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  t.equal(core.record({ agreementId: 'agr_1' }, 'searches', 0), true, 'a valid value, not refused')
  t.equal(core.stats().refused.invalidValue, 0)
  t.same(core.stats().pending, { pairs: 0, units: '0' })
  t.equal((await core.flush()).sent, 0)
  t.equal(kinde.calls.meter_usage, 0, 'Kinde is not asked to record 0')
})

t.test('a flush delivers what was recorded before the call; a record made just after it waits for the next flush', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  // A flush before: the next call finds none running and starts its own at once.
  await core.flush()
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const first = core.flush()
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  t.equal((await first).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '1', 'only the usage recorded before the call')
  t.equal(core.stats().pending.units, '2', 'the later record is pending, for the next flush')
  t.equal((await core.flush()).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '3')
})

t.test('flushes never overlap: a caller resumed by the end of a flush joins the one already queued', async t => {
  const kinde = await emulator(t)
  const store = new MemoryStore()
  let taking = 0
  let overlapped = 0
  const take = store.take.bind(store)
  store.take = async () => {
    if (++taking > 1) overlapped++
    // A take that yields, as a shared store's does: another take could start meanwhile.
    await new Promise(resolve => setImmediate(resolve))
    try { return await take() } finally { taking-- }
  }
  const core = coreOn(t, kinde, { store })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const first = core.flush()
  let again: Promise<unknown> | undefined
  // This caller awaits the first flush before the next caller queues one: it resumes first.
  const resumed = first.then(() => {
    core.record({ agreementId: 'agr_1' }, 'searches', 2)
    again = core.flush() // the first is over, the queued one not yet started
  })
  const queued = core.flush() // during the first: queued behind it
  await resumed
  t.equal(again, queued, 'the caller joins the queued flush')
  await Promise.all([queued, again])
  t.equal(overlapped, 0, 'no two store.take() ran at once')
  t.equal(kinde.usage('agr_1', 'searches'), '3', 'usage recorded before the call was included')
})

t.test('flushes during a 429 pause longer than their slot leave pending usage in place until the pause ends', async t => {
  const kinde = await emulator(t)
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { flushInterval: 100, logger })
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.5 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const throttled = await flushed()
  t.match(throttled, { deliveredHere: true, sent: 0, pending: 1, error: { kind: 'not_applied', message: /429/ } }, 'the throttled flush keeps the usage, and says why')
  const outcomes = []
  // Each wait has its own deadline; the pause ends within a few slots.
  for (let flush = 0; flush < 20 && core.stats().sent.records === 0; flush++) outcomes.push(await flushed())
  const held = outcomes.slice(0, -1)
  t.ok(held.length >= 2, `flushes went on during the pause (${held.length})`)
  t.same(held.map(outcome => outcome.deliveredHere), held.map(() => false), 'none of them took the usage out to put it back')
  t.same(held.map(outcome => outcome.error?.kind), held.map(() => 'not_applied'), 'each held flush names the failure that holds it')
  t.match(outcomes.at(-1), { deliveredHere: true, sent: 1 }, 'the first flush after the pause delivered it')
  t.equal(outcomes.at(-1).error, undefined, 'and reports no failure')
  t.equal(kinde.calls.meter_usage, 2, 'nothing was sent during the pause')
})

t.test('the interval flushes on its own', async t => {
  const kinde = await emulator(t)
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { flushInterval: 20, logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.equal((await flushed()).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('overflow beyond what onDrop can itemize is still counted, never silent', async t => {
  const kinde = await emulator(t)
  const drops: Drop[] = []
  const core = coreOn(t, kinde, { maxPendingPairs: 1, onDrop: (records, reason) => drops.push({ records, reason }) })
  kinde.fault({ kind: 'status', status: 503, times: Infinity })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  for (let i = 0; i < 10_005; i++) core.record({ customerId: `cus_${i}` }, 'searches', 1)
  core.record({ customerId: 'cus_0' }, 'searches', 1) // an itemized pair keeps summing
  await core.flush()
  const itemized = drops.filter(drop => drop.reason === 'overflow').flatMap(drop => drop.records)
  t.equal(itemized.length, 10_000, 'onDrop gets the first 10,000 pairs')
  t.same(core.stats().dropped.overflow, { records: 10_005, units: '10006' }, 'every unit counted')
  kinde.clearFaults() // so that close() at teardown delivers agr_1 rather than retrying for shutdownTimeout
})

t.test('an accessToken function that throws or rejects is a token failure: usage pending, one error naming the option', async t => {
  const kinde = await emulator(t)
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: kinde.clientId, client_secret: kinde.clientSecret, audience: `${kinde.url}/api` })
  const { access_token: token } = await (await fetch(`${kinde.url}/oauth2/token`, { method: 'POST', body: form })).json() as { access_token: string }
  const { entries, logger } = memoryLogger()
  let source: () => string | Promise<string> = () => { throw new Error('vault down') }
  // A back-off of 1 ms after each token failure, waited out below by a 5 ms timer.
  const core = coreOn(t, kinde, { clientId: undefined, clientSecret: undefined, accessToken: () => source(), logger, retry: { baseDelay: 1, maxDelay: 1 } })
  const backOffPassed = async (): Promise<void> => await new Promise(resolve => setTimeout(resolve, 5))
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  t.match(await core.flush(), { sent: 0, pending: 1, error: { kind: 'credentials', message: /option "accessToken": the function failed: Error: vault down/ } }, 'a throwing function: the outcome blames the credentials')
  source = async () => { throw new Error('vault still down') }
  await backOffPassed()
  t.match(await core.flush(), { sent: 0, pending: 1 }, 'a rejecting function')
  source = () => ''
  await backOffPassed()
  t.match(await core.flush(), { sent: 0, pending: 1 }, 'a function giving no token')
  t.equal(core.stats().pending.pairs, 1, 'the usage stays pending')
  t.equal(core.stats().failures.unauthorized, 3, 'counted as token failures')
  t.equal(core.stats().failures.notApplied, 0, 'not as network failures')
  t.equal(kinde.calls.meter_usage, 0, 'nothing reached Kinde without a token')
  const errors = entries.filter(entry => entry.level === 'error')
  t.equal(errors.length, 1, 'one error log')
  t.match(errors[0], { obj: { option: 'accessToken', err: { message: /vault down/ } }, msg: /option "accessToken"/ })
  source = () => token
  await backOffPassed()
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.usage('agr_1', 'searches'), '2', 'delivered once the function gives a token')
})
