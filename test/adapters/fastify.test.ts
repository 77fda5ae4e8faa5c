import t from 'tap'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Readable } from 'node:stream'
import { kindeMetering, InvalidOptionError, type Metering } from '../../lib/index.js'
import { emulator, meteredApp, memoryLogger, pluginOptions } from '../fixtures.js'

t.test('each meter form sums exactly per agreement and feature', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/search', { config: { meter: 'searches' } }, async () => ({ hits: [] }))
  app.get('/export', { config: { meter: { feature: 'egress_bytes', value: 'responseBytes' } } }, async () => 'x'.repeat(1000))
  app.get('/stream', { config: { meter: { feature: 'egress_bytes', value: 'responseBytes' } } }, async (_req, reply) =>
    reply.send(Readable.from([Buffer.alloc(300), Buffer.alloc(200)])))
  app.get('/render', { config: { meter: ['renders', { feature: 'cpu_ms', value: () => 2.5 }] } }, async () => 'ok')
  app.post('/upload', { config: { meter: { feature: 'request_bytes', value: 'requestBytes' } } }, async () => 'ok')
  app.get('/free', async () => 'not metered')

  for (let i = 0; i < 5; i++) await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  for (let i = 0; i < 2; i++) await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_2' } })
  await app.inject({ url: '/export', headers: { 'x-agreement': 'agr_1' } })
  await app.inject({ url: '/stream', headers: { 'x-agreement': 'agr_1' } })
  for (let i = 0; i < 4; i++) await app.inject({ url: '/render', headers: { 'x-agreement': 'agr_3' } })
  await app.inject({ method: 'POST', url: '/upload', headers: { 'x-agreement': 'agr_2' }, payload: { data: 'y'.repeat(100) } })
  await app.inject({ url: '/free', headers: { 'x-agreement': 'agr_1' } })
  await app.inject({ url: '/search' }) // no customer: not metered

  const outcome = await app.metering.flush()
  t.equal(outcome.sent, 6)
  t.equal(kinde.usage('agr_1', 'searches'), '5')
  t.equal(kinde.usage('agr_2', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '1500')
  t.equal(kinde.usage('agr_3', 'renders'), '4')
  t.equal(kinde.usage('agr_3', 'cpu_ms'), '10')
  t.equal(kinde.usage('agr_2', 'request_bytes'), String(JSON.stringify({ data: 'y'.repeat(100) }).length))
  t.equal(kinde.records.length, 6, 'one record per (agreement, feature)')
  for (const record of kinde.records) {
    t.equal(record.meter_type_code, 'delta')
    t.match(record.meter_usage_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  }
  t.equal(app.metering.stats().pending.pairs, 0)
})

t.test('durationMs meters the time to respond', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/slow', { config: { meter: { feature: 'cpu_ms', value: 'durationMs' } } }, async () => {
    await new Promise(resolve => setTimeout(resolve, 50))
    return 'ok'
  })
  const started = performance.now()
  await app.inject({ url: '/slow', headers: { 'x-agreement': 'agr_1' } })
  const roundTrip = performance.now() - started
  await app.metering.flush()
  const duration = Number(kinde.usage('agr_1', 'cpu_ms'))
  t.ok(duration >= 49 && duration <= roundTrip, `a handler that waits 50 ms bills ${duration} ms, within the round trip of ${roundTrip} ms`)
})

t.test('failed statuses are not counted by route meters; reply.meter always counts', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/search', { config: { meter: 'searches' } }, async (request, reply) => {
    reply.meter('llm_tokens', 10)
    if (request.query && (request.query as { fail?: string }).fail) return reply.code(Number((request.query as { fail: string }).fail)).send('no')
    return 'ok'
  })
  await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  await app.inject({ url: '/search?fail=404', headers: { 'x-agreement': 'agr_1' } })
  await app.inject({ url: '/search?fail=500', headers: { 'x-agreement': 'agr_1' } })
  await app.inject({ url: '/search?fail=302', headers: { 'x-agreement': 'agr_1' } })
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '2', '200 and 302 count, 404 and 500 do not')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '40')
})

t.test('countStatus changes which responses route meters count', async t => {
  const kinde = await emulator(t)
  const asked: number[] = []
  const app = await meteredApp(t, kinde, { countStatus: status => { asked.push(status); return status === 201 || status === 404 } })
  app.get('/search', { config: { meter: 'searches' } }, async (request, reply) => reply.code(Number((request.query as { status: string }).status)).send('x'))
  for (const status of [200, 201, 404, 500]) await app.inject({ url: `/search?status=${status}`, headers: { 'x-agreement': 'agr_1' } })
  await app.metering.flush()
  t.same(asked, [200, 201, 404, 500], 'asked once per response, with its status')
  t.equal(kinde.usage('agr_1', 'searches'), '2', 'only the 201 and the 404 counted')
})

t.test('a throwing countStatus is caught, logged once and counted; the request and later hooks are unaffected', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde, { countStatus: () => { throw new Error('bad predicate') } }))
  const later: string[] = []
  app.get('/search', { config: { meter: 'searches' } }, async (_request, reply) => {
    reply.meter('llm_tokens', 1)
    return 'fine'
  })
  app.addHook('onResponse', async request => { later.push(request.url) })
  for (let i = 0; i < 3; i++) {
    const response = await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
    t.equal(response.statusCode, 200)
    t.equal(response.body, 'fine')
  }
  t.same(later, ['/search', '/search', '/search'], 'later onResponse hooks ran')
  t.equal(app.metering.stats().refused.countStatusError, 3, 'every response counted')
  t.equal(entries.filter(entry => entry.level === 'error' && /countStatus threw/.test(entry.msg ?? '')).length, 1, 'logged once')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '0', 'the route meter counted nothing')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '3', 'reply.meter amounts always count')
})

t.test('decimals from reply.meter sum without float drift', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.post('/chat', async (_request, reply) => {
    reply.meter('llm_tokens', 0.1).meter('llm_tokens', 0.2)
    return 'ok'
  })
  for (let i = 0; i < 100; i++) await app.inject({ method: 'POST', url: '/chat', headers: { 'x-agreement': 'agr_1' } })
  t.equal(app.metering.stats().pending.units, '30')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '30')
  t.equal(kinde.records[0].meter_value, '30')
})

t.test('bad meter values are counted and logged once per route and feature, and the request is unaffected', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde))
  app.get('/bad', { config: { meter: { feature: 'cpu_ms', value: () => -1 } } }, async (_request, reply) => {
    reply.meter('llm_tokens', NaN)
    return 'fine'
  })
  app.get('/throws', { config: { meter: { feature: 'cpu_ms', value: () => { throw new Error('boom') } } } }, async () => 'fine too')
  for (let i = 0; i < 3; i++) {
    const response = await app.inject({ url: '/bad', headers: { 'x-agreement': 'agr_1' } })
    t.equal(response.statusCode, 200)
    t.equal(response.body, 'fine')
  }
  const thrown = await app.inject({ url: '/throws', headers: { 'x-agreement': 'agr_1' } })
  t.equal(thrown.body, 'fine too')
  t.equal(app.metering.stats().refused.invalidValue, 7)
  const warnings = entries.filter(entry => entry.level === 'warn' && /not recorded/.test(entry.msg ?? ''))
  t.equal(warnings.length, 3, 'one per route and feature')
  await app.metering.flush()
  t.equal(kinde.records.length, 0)
})

t.test('refusals quote what was received, count a bad feature apart from a bad customer, and carry the request id', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde))
  app.get('/a', { config: { meter: { feature: 'cpu_ms', value: () => -1 } } }, async (_request, reply) => {
    reply.meter('llm_tokens', '5' as any)
    reply.meter(undefined as any, 5)
    return 'fine'
  })
  app.route({ method: ['PUT', 'POST'], url: '/multi', config: { meter: { feature: 'cpu_ms', value: () => -2 } }, handler: async () => 'ok' })
  const response = await app.inject({ url: '/a', headers: { 'x-agreement': 'agr_1' } })
  t.equal(response.body, 'fine')
  t.match(app.metering.stats().refused, { invalidValue: 2, invalidFeature: 1, invalidCustomer: 0 })
  const warnings = entries.filter(entry => entry.level === 'warn' && /not recorded/.test(entry.msg ?? ''))
  t.same(warnings.map(entry => entry.msg), [
    'kinde-metering: usage not recorded: meter value must be a finite number >= 0, got "5" (string)',
    'kinde-metering: usage not recorded: feature must be a Kinde billing feature code, a string of 1 to 256 characters, got undefined (undefined)',
    'kinde-metering: usage not recorded: meter value must be a finite number >= 0, got -1 (number)'
  ])
  const reqId = warnings[0].obj.reqId
  t.type(reqId, 'string')
  t.same(warnings.map(entry => entry.obj), [
    { origin: 'GET /a', feature: 'llm_tokens', reqId },
    { origin: 'GET /a', feature: undefined, reqId },
    { origin: 'GET /a', feature: 'cpu_ms', reqId }
  ], 'reply.meter and the route meter name the route alike, with the request id')

  await app.inject({ method: 'POST', url: '/multi', headers: { 'x-agreement': 'agr_1' } })
  t.match(entries.filter(entry => entry.level === 'warn').at(-1), { obj: { origin: 'POST /multi', feature: 'cpu_ms' }, msg: /got -2 \(number\)/ }, 'a route of several methods names the request\'s method')
})

t.test('a throwing or rejecting customer function leaves the response untouched', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde, {
    customer: request => {
      if (request.headers['x-mode'] === 'reject') return Promise.reject(new Error('lookup down'))
      if (request.headers['x-mode'] === 'async') return Promise.resolve({ agreementId: 'agr_2' })
      if (request.headers['x-mode'] === 'none') return Promise.resolve(undefined)
      throw new Error('no customer here')
    }
  }))
  app.get('/search', { config: { meter: 'searches' } }, async () => ({ ok: true }))
  const thrown = await app.inject({ url: '/search' })
  t.equal(thrown.statusCode, 200)
  t.same(thrown.json(), { ok: true })
  const rejected = await app.inject({ url: '/search', headers: { 'x-mode': 'reject' } })
  t.equal(rejected.statusCode, 200)
  await app.inject({ url: '/search', headers: { 'x-mode': 'async' } })
  await app.inject({ url: '/search', headers: { 'x-mode': 'none' } })
  await new Promise(resolve => setImmediate(resolve)) // the customer promises settle after the response
  t.equal(app.metering.stats().refused.customerError, 2)
  t.equal(entries.filter(entry => entry.level === 'error' && /customer function/.test(entry.msg ?? '')).length, 1, 'logged once per route')
  await app.metering.flush()
  t.equal(kinde.usage('agr_2', 'searches'), '1')
})

t.test('a throwing countStatus or customer function is logged once per route, with its error and the route', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  const predicate = new Error('bad predicate')
  const lookup = new Error('no session')
  await app.register(kindeMetering, pluginOptions(kinde, {
    countStatus: status => {
      if (status === 500) throw predicate
      return true
    },
    customer: request => {
      if (request.headers['x-agreement'] === undefined) throw lookup
      return { agreementId: String(request.headers['x-agreement']) }
    }
  }))
  const failing = async (request: FastifyRequest, reply: FastifyReply) => await reply.code(request.headers['x-fail'] === undefined ? 200 : 500).send('done')
  app.get('/a', { config: { meter: 'searches' } }, failing)
  app.get('/b', { config: { meter: 'searches' } }, failing)
  for (const url of ['/a', '/b', '/a', '/b']) {
    await app.inject({ url, headers: { 'x-agreement': 'agr_1', 'x-fail': 'yes' } })
    await app.inject({ url })
  }
  t.same(app.metering.stats().refused, { invalidValue: 0, invalidFeature: 0, invalidCustomer: 0, customerError: 4, countStatusError: 4, afterClose: 0, mixedKinds: 0 })
  t.same(entries.filter(entry => entry.level === 'error').map(({ obj, msg }) => [msg, obj]), [
    ['kinde-metering: countStatus threw; the response was not metered', { err: predicate, origin: 'GET /a' }],
    ['kinde-metering: the customer function threw; the request was not metered', { err: lookup, origin: 'GET /a' }],
    ['kinde-metering: countStatus threw; the response was not metered', { err: predicate, origin: 'GET /b' }],
    ['kinde-metering: the customer function threw; the request was not metered', { err: lookup, origin: 'GET /b' }]
  ])
})

t.test('without a customer option, request.user bills its organization, else its user', async t => {
  const kinde = await emulator(t, {
    users: [{ id: 'kp_user', customerId: 'cus_1' }],
    organizations: [{ code: 'org_acme', customerId: 'cus_2' }]
  })
  const app = Fastify()
  t.teardown(() => app.close())
  const { customer: _ignored, ...options } = pluginOptions(kinde)
  await app.register(kindeMetering, options)
  app.addHook('onRequest', async request => {
    const header = request.headers['x-user']
    ;(request as any).user = typeof header === 'string' ? JSON.parse(header) : header
  })
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  await app.inject({ url: '/search', headers: { 'x-user': JSON.stringify({ sub: 'kp_user', org_code: 'org_acme' }) } })
  await app.inject({ url: '/search', headers: { 'x-user': JSON.stringify({ sub: 'kp_user' }) } })
  await app.inject({ url: '/search', headers: { 'x-user': JSON.stringify({ name: 'nobody' }) } })
  await app.inject({ url: '/search' })
  await app.metering.flush()
  t.equal(kinde.usage('agr_2', 'searches'), '1', 'org_code wins')
  t.equal(kinde.usage('agr_1', 'searches'), '1', 'else sub')
})

t.test('app.close() delivers everything pending', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  for (let i = 0; i < 7; i++) await app.inject({ url: '/search', headers: { 'x-agreement': `agr_${(i % 3) + 1}` } })
  await app.close()
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.equal(kinde.usage('agr_2', 'searches'), '2')
  t.equal(kinde.usage('agr_3', 'searches'), '2')
  t.equal(app.metering.stats().refused.afterClose, 0)
  t.notOk(app.metering.record({ agreementId: 'agr_1' }, 'searches', 1), 'recording after close is refused')
  t.equal(app.metering.stats().refused.afterClose, 1)
})

t.test('bad options are rejected at registration with the option named', async t => {
  const kinde = await emulator(t)
  const cases: Array<[string, object]> = [
    ['domain', { domain: '' }],
    ['domain', { domain: 'https://acme.kinde.com/api' }],
    ['domain', { domain: 'http://[bad' }],
    ['clientId', { clientId: undefined }],
    ['clientSecret', { clientSecret: '' }],
    ['accessToken', { accessToken: 42 }],
    ['flushInterval', { flushInterval: 0 }],
    ['flushInterval', { flushInterval: 'soon' }],
    ['concurrency', { concurrency: 1.5 }],
    ['customer', { customer: 'header' }],
    ['ambiguous', { ambiguous: 'maybe' }],
    ['retry', { retry: 3 }],
    ['retry.attempts', { retry: { attempts: 0 } }],
    ['shutdownTimout', { shutdownTimout: 5_000 }],
    ['retry.maxDelayMs', { retry: { maxDelayMs: 5 } }]
  ]
  for (const [option, bad] of cases) {
    const app = Fastify()
    const env = { ...process.env }
    delete process.env.KINDE_DOMAIN
    delete process.env.KINDE_MANAGEMENT_CLIENT_ID
    delete process.env.KINDE_MANAGEMENT_CLIENT_SECRET
    const error = await app.register(kindeMetering, { ...pluginOptions(kinde), ...bad }).then(() => undefined, (e: unknown) => e)
    process.env = env
    t.type(error, InvalidOptionError, option)
    t.equal((error as InvalidOptionError).code, 'KINDE_METERING_INVALID_OPTION')
    t.equal((error as InvalidOptionError).option, option)
    t.match((error as Error).message, option)
    t.notMatch((error as Error).message, kinde.clientSecret, 'the secret never appears in errors')
  }
})

t.test('Fastify\'s own register options are not taken for unknown metering options', async t => {
  const kinde = await emulator(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(kindeMetering, { ...pluginOptions(kinde), prefix: '/v1', logLevel: 'warn' } as any)
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  await app.inject({ url: '/search', headers: { 'x-agreement': 'agr_1' } })
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('a route meter naming no feature fails when the route is added', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  const bad: unknown[] = [{ value: 2 }, { feature: '' }, 42, { feature: 'f', value: -1 }, { feature: 'f', value: 'bytes' }]
  for (const meter of bad) {
    t.throws(() => app.get(`/r${bad.indexOf(meter)}`, { config: { meter: meter as any } }, async () => 'x'),
      { code: 'KINDE_METERING_INVALID_OPTION', option: 'config.meter', message: /GET \/r\d/ })
  }
})

t.test('credentials and domain come from the environment', async t => {
  const kinde = await emulator(t)
  const env = { ...process.env }
  t.teardown(() => { process.env = env })
  process.env.KINDE_DOMAIN = kinde.url
  process.env.KINDE_MANAGEMENT_CLIENT_ID = kinde.clientId
  process.env.KINDE_MANAGEMENT_CLIENT_SECRET = kinde.clientSecret
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(kindeMetering, { customer: () => ({ agreementId: 'agr_1' }) })
  app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
  await app.inject('/search')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('route hooks of their own keep running beside the meter; empty bodies count zero bytes', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  const seen: string[] = []
  app.get('/one', { config: { meter: 'searches' }, onResponse: (_request, _reply, done) => { seen.push('one'); done() } }, async () => 'ok')
  app.get('/many', { config: { meter: 'searches' }, onResponse: [(_request, _reply, done) => { seen.push('many'); done() }] }, async () => 'ok')
  app.get('/empty', { config: { meter: [{ feature: 'egress_bytes', value: 'responseBytes' }, { feature: 'request_bytes', value: 'requestBytes' }, 'renders'] } },
    async (_request, reply) => reply.code(204).send())
  app.setNotFoundHandler(async (_request, reply) => {
    reply.meter('llm_tokens', 1)
    return reply.code(404).send('none')
  })
  for (const url of ['/one', '/many', '/empty', '/missing']) await app.inject({ url, headers: { 'x-agreement': 'agr_1' } })
  await app.metering.flush()
  t.same(seen, ['one', 'many'])
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'renders'), '1', 'the 204 counted')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '0', 'no body, no bytes')
  t.equal(kinde.usage('agr_1', 'request_bytes'), '0')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '1', 'reply.meter works in the not-found handler')
  t.equal(app.metering.stats().refused.invalidValue, 0)
})

t.test('registered inside an encapsulated scope, the plugin warns once, naming what is and is not metered', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  let scoped: Metering | undefined
  await app.register(async api => {
    await api.register(kindeMetering, pluginOptions(kinde))
    scoped = api.metering
    api.get('/search', { config: { meter: 'searches' } }, async () => 'in scope')
  }, { prefix: '/v1' })
  app.get('/outside', { config: { meter: 'searches' } }, async () => 'outside')
  await app.ready()
  const warnings = entries.filter(entry => entry.level === 'warn' && /encapsulated scope/.test(entry.msg ?? ''))
  t.equal(warnings.length, 1, 'said once')
  t.match(warnings[0], { obj: { prefix: '/v1' }, msg: /\(prefix "\/v1"\): only routes added in this scope .* are metered, and reply\.meter and app\.metering exist only there; routes outside it are not metered, even with config\.meter\. Register kinde-metering on the root instance/ })
  await app.inject({ url: '/v1/search', headers: { 'x-agreement': 'agr_1' } })
  await app.inject({ url: '/outside', headers: { 'x-agreement': 'agr_1' } })
  t.equal(app.metering, undefined, 'app.metering is not on the root instance, as the warning says')
  await scoped!.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1', 'only the route in the scope was metered, as the warning says')
})

t.test('a scope without a prefix is encapsulated too: the warning says so without naming a prefix', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(async api => { await api.register(kindeMetering, pluginOptions(kinde)) })
  await app.ready()
  t.match(entries.filter(entry => entry.level === 'warn'), [{ obj: { prefix: '' }, msg: /^kinde-metering: registered inside an encapsulated scope: only routes/ }])
})

t.test('registered on the root instance, or in a plugin that fastify-plugin unwraps, there is no scope warning', async t => {
  const kinde = await emulator(t)
  for (const wrap of [false, true]) {
    const { entries, logger } = memoryLogger()
    const app = Fastify({ loggerInstance: logger })
    t.teardown(() => app.close())
    if (wrap) await app.register(fp(async api => { await api.register(kindeMetering, pluginOptions(kinde)) }))
    else await app.register(kindeMetering, pluginOptions(kinde))
    await app.ready()
    t.same(entries.filter(entry => entry.level === 'warn'), [], wrap ? 'inside fastify-plugin' : 'on the root')
  }
})

t.test('info logs: one line at ready naming the settings and metered routes, one per flush that did something, none per request', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const app = Fastify({ loggerInstance: logger, disableRequestLogging: true })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde))
  app.get('/search', { config: { meter: 'searches' } }, async (_request, reply) => reply.meter('llm_tokens', 1.5).send('ok'))
  app.post('/upload', { config: { meter: { feature: 'request_bytes', value: 'requestBytes' } } }, async () => 'ok')
  app.get('/free', async () => 'free')
  await app.ready()
  const infos = (): typeof entries => entries.filter(entry => entry.level === 'info')
  t.same(infos().map(entry => entry.obj), [{ domain: kinde.url, flushInterval: 3_600_000, store: 'MemoryStore', journal: false, meteredRoutes: 2 }],
    'the GET route counts once, not its automatic HEAD route')
  t.equal(infos()[0].msg, `kinde-metering: metering 2 route(s), delivering to ${kinde.url} every 3600000 ms`)
  t.notMatch(JSON.stringify(entries), kinde.clientSecret, 'no secret in the startup line')

  for (let i = 0; i < 50; i++) await app.inject({ url: '/search', headers: { 'x-agreement': `agr_${(i % 2) + 1}` } })
  t.equal(infos().length, 1, 'a burst of requests logs nothing')
  t.same(entries.filter(entry => entry.level !== 'debug' && entry.level !== 'trace').length, 1, 'at any level')

  const flushed = await app.metering.flush()
  t.equal(infos().length, 2)
  t.same(infos()[1].obj, { records: 4, units: '125', dropped: 0, pending: 0, durationMs: flushed.durationMs })
  t.equal(infos()[1].msg, 'kinde-metering: flush sent 4 record(s)')
  await app.metering.flush()
  t.equal(infos().length, 2, 'a flush with nothing to send says nothing at info')
  app.metering.record({ agreementId: 'agr_1' }, 'not_a_feature', 1)
  await app.metering.flush()
  t.match(infos()[2], { obj: { records: 0, units: '0', dropped: 1, pending: 0 }, msg: 'kinde-metering: flush sent 0 record(s), dropped 1' })
})
