/**
 * The Management API token as Kinde bills it (every M2M token fetched costs): reused while it
 * lasts, replaced a little before it expires, never carried to Kinde expired.
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'
import { coreOnStandIn, json, standIn } from './stand-in.js'

t.test('a token is reused while it lasts and replaced a tenth of its lifetime before it expires', async t => {
  const kinde = await emulator(t, { tokenTtlSeconds: 1 })
  const core = coreOn(t, kinde)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const first = await core.flush()
  // The token was fetched within the first flush: it is at most this old when the others start.
  const fetchedBy = first.startedAt + first.durationMs
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  core.record({ agreementId: 'agr_3' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.calls.token, 1, 'one token for three flushes within its lifetime')
  // Past nine tenths of the 1 s lifetime, the token is due for replacement though Kinde still takes it.
  await sleep(fetchedBy + 950 - Date.now())
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.calls.token, 2, 'replaced before it expired')
  t.same(kinde.records.filter(record => record.status !== 200), [], 'no send carried a token Kinde had to refuse')
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('a token answer of 200 without access_token is a refusal: nothing is sent with it, the usage stays pending', async t => {
  const kinde = await standIn(t, request => request.url === '/oauth2/token' ? { status: 200, headers: json, body: '{"token_type":"Bearer"}' } : undefined)
  const { entries, logger } = memoryLogger()
  const core = coreOnStandIn(t, kinde.url, { logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1, error: { kind: 'credentials', message: /refused with HTTP 200 \(no access_token in the answer\)/ } })
  t.same(kinde.received.map(request => request.url), ['/oauth2/token'], 'no meter usage went out')
  t.match(entries.find(entry => entry.level === 'error')?.msg, /no Management API token/)
})

t.test('a refusal that gives only an OAuth error code is quoted as it came', async t => {
  const kinde = await standIn(t, request => request.url === '/oauth2/token' ? { status: 401, headers: json, body: '{"error":"invalid_client"}' } : undefined)
  const core = coreOnStandIn(t, kinde.url)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.match(outcome, { sent: 0, pending: 1 })
  t.match(outcome.error?.message, /^kinde-metering: token request was refused with HTTP 401 \(invalid_client\); check clientId, clientSecret/)
})

t.test('a token endpoint that cannot be reached is named with what the connection said', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { shutdownTimeout: 20 })
  kinde.fault({ endpoint: 'token', kind: 'reset', times: Infinity })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.match(outcome, { sent: 0, pending: 1, error: { kind: 'not_applied' } })
  t.match(outcome.error?.message, `token request to ${kinde.url}/oauth2/token failed: socket hang up`)
})

t.test('an accessToken function giving no token is named, with what it gave', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { clientId: undefined, clientSecret: undefined, accessToken: () => undefined as unknown as string, shutdownTimeout: 20 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.match(outcome, { sent: 0, pending: 1, error: { kind: 'credentials', message: 'option "accessToken": the function must give a non-empty string, gave undefined' } })
  t.equal(kinde.calls.meter_usage, 0)
})

t.test('a send refused with a token already replaced retries with the new one: Kinde is asked for one token, not two', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde, { concurrency: 2 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  await core.flush()
  kinde.expireTokens()
  // The first send's 401 comes back only after the second's refresh has fetched the new token.
  kinde.fault({ kind: 'delay', delayMs: 200 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.match(await core.flush(), { sent: 2 })
  t.equal(kinde.calls.token, 2, 'the first token, and one refresh')
  t.equal(kinde.records.filter(record => record.status === 401).length, 2, 'both sends met the expired token once')
})
