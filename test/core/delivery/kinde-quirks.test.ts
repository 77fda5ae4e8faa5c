/**
 * Answers Kinde's documentation leaves open (a token without `expires_in`, a Retry-After date,
 * a body that is not what its content type says) from a small HTTP server on loopback, and the
 * core's own edges: a token source of the user's, a failing store, no logger.
 */
import t from 'tap'
import type { Test } from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { InvalidOptionError, MemoryStore, Metering, type DroppedRecord, type Take } from '../../../lib/index.js'
import { adapterHooks, withCustomer } from '../../../lib/core/adapter-hooks.js'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

interface Answer { status: number, headers?: Record<string, string>, body?: string }
type Script = (request: IncomingMessage, body: string) => Answer

/** A Kinde stand-in answering as `script` says; returns its origin and the paths it was asked. */
async function quirkyKinde (t: Test, script: Script): Promise<{ url: string, asked: string[] }> {
  const asked: string[] = []
  const server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8').on('data', chunk => { body += chunk }).on('end', () => {
      asked.push(`${request.method} ${request.url}`)
      const answer = script(request, body)
      response.writeHead(answer.status, answer.headers).end(answer.body ?? '')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked }
}

const json = { 'content-type': 'application/json' }
const tokenAnswer = (extra: object = {}): Answer => ({ status: 200, headers: json, body: JSON.stringify({ access_token: 'quirky-token', token_type: 'Bearer', ...extra }) })
const ok: Answer = { status: 200, headers: json, body: '{"message":"Success","code":"OK"}' }

function quirkyCore (t: Test, url: string, extra: Partial<ConstructorParameters<typeof Metering>[0]> = {}): Metering {
  const core = new Metering({
    domain: url, clientId: 'id', clientSecret: 'quirky-secret', flushInterval: 3_600_000,
    retry: { baseDelay: 1, maxDelay: 5 }, shutdownTimeout: 20, logger: memoryLogger().logger, ...extra
  })
  t.teardown(() => core.close())
  return core
}

t.test('a token answered without expires_in is kept and reused', async t => {
  const kinde = await quirkyKinde(t, request => request.url === '/oauth2/token' ? tokenAnswer() : ok)
  const core = quirkyCore(t, kinde.url)
  for (let i = 0; i < 3; i++) {
    core.record({ agreementId: 'agr_1' }, 'searches', 1)
    t.equal((await core.flush()).sent, 1)
  }
  t.equal(kinde.asked.filter(path => path === 'POST /oauth2/token').length, 1)
})

t.test('a token endpoint that fails without an OAuth error keeps usage pending as not applied', async t => {
  const kinde = await quirkyKinde(t, () => ({ status: 500, headers: { 'content-type': 'text/html' }, body: '<h1>oops</h1>' }))
  const { entries, logger } = memoryLogger()
  const core = quirkyCore(t, kinde.url, { logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ userId: 'kp_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.pending, 2, 'the send and the look-up both wait for a token')
  t.equal(core.stats().failures.notApplied, 4, 'retried like any outage')
  t.match(entries.find(entry => /look-up failed/.test(entry.msg ?? ''))?.obj.err, { code: 'KINDE_METERING_TOKEN_ERROR' })
  t.match(entries.find(entry => /did not apply/.test(entry.msg ?? ''))?.obj.err.message, /HTTP 500 \(no access_token in the answer\)/)
})

t.test('an unreachable token endpoint keeps usage pending, then delivers', async t => {
  const kinde = await emulator(t)
  const core = coreOn(t, kinde)
  kinde.fault({ endpoint: 'token', kind: 'reset', times: 4 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.equal((await core.flush()).pending, 1)
  t.equal((await core.flush()).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('Retry-After as a date holds every send until then; one that is not a date is ignored', async t => {
  let throttled = 0
  const kinde = await quirkyKinde(t, request => {
    if (request.url === '/oauth2/token') return tokenAnswer({ expires_in: 3600 })
    throttled++
    if (throttled === 1) return { status: 429, headers: { ...json, 'retry-after': new Date(Date.now() + 2_000).toUTCString() }, body: '{}' }
    if (throttled === 2) return { status: 503, headers: { ...json, 'retry-after': 'soon' }, body: '{}' }
    return ok
  })
  const core = quirkyCore(t, kinde.url)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const outcome = await core.flush()
  t.equal(outcome.sent, 1)
  // HTTP dates have whole seconds: the wait ends somewhere in the second after the 429.
  t.ok(outcome.durationMs >= 900, `waited for the date (${outcome.durationMs} ms)`)
})

t.test('a body that is not the JSON its content type claims is kept as text', async t => {
  const kinde = await quirkyKinde(t, request => request.url === '/oauth2/token'
    ? tokenAnswer({ expires_in: 3600 })
    : { status: 400, headers: json, body: 'not json{' })
  const drops: Array<{ reason: string, records: DroppedRecord[] }> = []
  const core = quirkyCore(t, kinde.url, { onDrop: (records, reason) => drops.push({ reason, records }) })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  await core.flush()
  t.equal(drops.length, 1, 'one drop report')
  t.equal(drops[0].reason, 'rejected', 'a 400 is a rejection')
  t.match(drops[0].records, [{ agreementId: 'agr_1', feature: 'searches', value: '1', error: { status: 400, body: 'not json{', message: String } }])
  t.equal(drops[0].records.length, 1, 'the one record sent')
})

t.test('a look-up answered with a plain-text 500 names it and keeps the usage', async t => {
  const kinde = await quirkyKinde(t, request => request.url === '/oauth2/token'
    ? tokenAnswer({ expires_in: 3600 })
    : { status: 500, headers: { 'content-type': 'text/plain' }, body: 'upstream timeout' })
  const { entries, logger } = memoryLogger()
  const core = quirkyCore(t, kinde.url, { logger })
  core.record({ userId: 'kp_1' }, 'searches', 1)
  t.equal((await core.flush()).pending, 1)
  const warning = entries.find(entry => entry.level === 'warn')
  t.equal(warning?.obj.err.code, 'KINDE_METERING_API_ERROR')
  t.match(warning?.obj.err.message, /user look-up failed with HTTP 500: upstream timeout/)
})

t.test('accessToken as a function is asked at every send', async t => {
  const kinde = await emulator(t)
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: kinde.clientId, client_secret: kinde.clientSecret, audience: `${kinde.url}/api` })
  const { access_token: token } = await (await fetch(`${kinde.url}/oauth2/token`, { method: 'POST', body: form })).json() as { access_token: string }
  let asked = 0
  const core = coreOn(t, kinde, { clientId: undefined, clientSecret: undefined, accessToken: async () => { asked++; return token } })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  await core.flush()
  t.equal(asked, 2)
  t.equal(kinde.calls.token, 1, 'only the test fetched a token')
  t.equal(kinde.usage('agr_2', 'searches'), '1')
})

t.test('a store that fails keeps the flush from throwing; the next flush delivers', async t => {
  const kinde = await emulator(t)
  class FlakyStore extends MemoryStore {
    failures = 1
    override async take (): Promise<Take> {
      if (this.failures-- > 0) throw new Error('store unavailable')
      return await super.take()
    }
  }
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { store: new FlakyStore(), logger })
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  const failed = await core.flush()
  t.same(failed.error, { kind: 'flush', message: 'store unavailable' })
  const logged = entries.find(entry => entry.level === 'error' && /flush failed/.test(entry.msg ?? ''))
  t.match(logged?.obj, { err: { message: 'store unavailable' } }, 'the store\'s error is logged, under err')
  t.equal((await core.flush()).sent, 1)
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('the bare core rejects options that are not an object', async t => {
  t.throws(() => new Metering(null as any), new InvalidOptionError('options', 'must be an object'))
})

t.test('without a logger, the bare core writes warnings and errors to stderr', async t => {
  const kinde = await emulator(t)
  const warnings = t.capture(console, 'warn')
  const errors = t.capture(console, 'error')
  const core = coreOn(t, kinde, { logger: undefined })
  core.record({ agreementId: 'agr_1' }, 'searches', -1)
  withCustomer(adapterHooks(core), () => { throw new Error('no session') }, {}, 'GET /search', () => t.fail('no customer to record for'))
  t.match(warnings(), [{ args: [/usage not recorded/, /feature: 'searches'/] }])
  t.match(errors(), [{ args: [/customer function threw/, /origin: 'GET \/search'/] }])
})

t.test('the default logger prints a whole entry: Kinde\'s error body deep in a drop is visible', async t => {
  const kinde = await emulator(t)
  const errors = t.capture(console, 'error')
  const core = coreOn(t, kinde, { logger: undefined })
  core.record({ agreementId: 'agr_1' }, 'not_a_feature', 1)
  await core.flush()
  const [drop] = errors().filter(({ args }) => /dropped \(rejected\)/.test(String(args[0])))
  t.match(drop.args[1], /FEATURE_NOT_FOUND/, 'not hidden under [Object]')
  t.notMatch(drop.args[1], /\[Object\]|\[Array\]/)
})
