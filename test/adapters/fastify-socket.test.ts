/**
 * The Fastify plugin over a real socket (app.listen on 127.0.0.1), where HEAD, 304, clients that
 * leave mid-stream and compression behave as in production, unlike app.inject.
 */
import t, { type Test } from 'tap'
import compress from '@fastify/compress'
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { gunzipSync } from 'node:zlib'
import { request } from 'undici'
import Fastify from 'fastify'
import { kindeMetering } from '../../lib/fastify.js'
import { emulator, meteredApp, pluginOptions } from '../fixtures.js'

/** Listens on an ephemeral port of 127.0.0.1; returns the base URL. */
async function listen (app: FastifyInstance): Promise<string> {
  return await app.listen({ host: '127.0.0.1', port: 0 })
}

/** One request over the socket with the agreement header; resolves once the whole body is read. */
async function call (url: string, init: { method?: 'GET' | 'HEAD', headers?: Record<string, string> } = {}): Promise<{ status: number, headers: Record<string, unknown>, body: Buffer }> {
  const response = await request(url, { method: init.method ?? 'GET', headers: { 'x-agreement': 'agr_1', ...init.headers } })
  return { status: response.statusCode, headers: response.headers, body: Buffer.from(await response.body.arrayBuffer()) }
}

const DOC = 'd'.repeat(5_000)
const docMeters = ['searches', { feature: 'egress_bytes', value: 'responseBytes' as const }]

t.test('automatic HEAD routes meter nothing; a declared HEAD route meters its calls and no bytes', async (t: Test) => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/doc', { config: { meter: docMeters } }, async () => DOC)
  app.head('/declared', { config: { meter: docMeters } }, async (_request, reply) => reply.header('content-length', '5000').send())
  app.get('/declared', async () => DOC)
  app.route({ method: ['GET', 'POST'], url: '/both', config: { meter: docMeters }, handler: async () => DOC })
  const url = await listen(app)
  for (const path of ['/doc', '/doc', '/doc', '/doc', '/doc', '/both']) {
    const head = await call(`${url}${path}`, { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(head.body.length, 0)
  }
  await app.metering.flush()
  t.equal(kinde.records.length, 0, 'five HEAD /doc and a HEAD of a GET+POST route: nothing billed')

  t.equal((await call(`${url}/doc`)).body.length, 5_000)
  for (let i = 0; i < 2; i++) t.equal((await call(`${url}/declared`, { method: 'HEAD' })).headers['content-length'], '5000')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '3', 'the GET and the two declared HEADs count as calls')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '5000', 'only the GET sent a body')
})

t.test('204 and 304 responses meter 0 responseBytes whatever their headers claim', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/cached', { config: { meter: docMeters } }, async (request, reply) => {
    reply.header('etag', '"v1"')
    if (request.headers['if-none-match'] === '"v1"') return reply.code(304).send(DOC) // Fastify sends no body with a 304
    return DOC
  })
  app.delete('/doc', { config: { meter: docMeters } }, async (_request, reply) => reply.code(204).header('content-length', '5000').send())
  const url = await listen(app)
  t.equal((await call(`${url}/cached`)).body.length, 5_000)
  // Fastify keeps the body's content-length on the 304 (undici refuses such an answer; node:http reads it).
  const notModified = httpRequest(`${url}/cached`, { headers: { 'x-agreement': 'agr_1', 'if-none-match': '"v1"' } }).end()
  const [answer] = await once(notModified, 'response')
  let received = 0
  answer.on('data', (chunk: Buffer) => { received += chunk.length })
  await once(answer, 'end')
  t.equal(answer.statusCode, 304)
  t.equal(received, 0, 'no body on the wire')
  const deleted = await request(`${url}/doc`, { method: 'DELETE', headers: { 'x-agreement': 'agr_1' } })
  await deleted.body.dump()
  t.equal(deleted.statusCode, 204)
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '3', 'all three responses count as calls')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '5000', 'only the 200 sent a body')
})

t.test('a client that leaves before a streamed response finished is not counted by route meters; reply.meter amounts are', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  let streaming: (() => void) | undefined
  let serverSawClose: Promise<unknown> | undefined
  app.get('/stream', { config: { meter: docMeters } }, async (request, reply) => {
    reply.meter('llm_tokens', 5) // the work was done: billed whether or not the client waits
    serverSawClose = once(request.raw.socket, 'close')
    // A stream that sends one chunk, then waits: the client leaves in between.
    const body = new Readable({ read () {} })
    body.push(Buffer.alloc(1_000))
    streaming!()
    return reply.send(body)
  })
  const url = await listen(app)
  const started = new Promise<void>(resolve => { streaming = resolve })
  const client = httpRequest(`${url}/stream`, { headers: { 'x-agreement': 'agr_1' } })
  client.on('error', () => {}).end()
  const [response] = await once(client, 'response')
  await once(response, 'data')
  await started
  client.destroy()
  await serverSawClose
  t.equal((await call(`${url}/stream-missing`)).status, 404, 'the server goes on serving')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '0', 'the aborted response was not counted')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '0')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '5', 'its reply.meter amount was')
})

t.test('responseBytes counts the bytes sent after @fastify/compress, for buffered and streamed bodies', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  await app.register(compress, { threshold: 0 })
  app.get('/doc', { config: { meter: { feature: 'egress_bytes', value: 'responseBytes' } } }, async () => DOC)
  app.get('/stream', { config: { meter: { feature: 'renders', value: 'responseBytes' } } }, async (_request, reply) =>
    reply.type('text/plain').send(Readable.from([Buffer.from(DOC), Buffer.from(DOC)])))
  const url = await listen(app)
  const gzip = { 'accept-encoding': 'gzip' }
  const buffered = await call(`${url}/doc`, { headers: gzip })
  const streamed = await call(`${url}/stream`, { headers: gzip })
  t.equal(buffered.headers['content-encoding'], 'gzip')
  t.equal(streamed.headers['content-encoding'], 'gzip')
  t.equal(gunzipSync(buffered.body).toString(), DOC)
  t.equal(gunzipSync(streamed.body).length, 10_000)
  t.ok(buffered.body.length < 1_000 && streamed.body.length < 1_000, 'compressed well below the raw size')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'egress_bytes'), String(buffered.body.length), 'the compressed bytes sent, not the 5,000 before compression')
  t.equal(kinde.usage('agr_1', 'renders'), String(streamed.body.length), 'a compressed stream: the bytes sent')
})

t.test('responseBytes counts the compressed bytes whichever of @fastify/compress and kinde-metering is registered first', async t => {
  const kinde = await emulator(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(compress, { threshold: 0 })
  await app.register(kindeMetering, pluginOptions(kinde))
  app.get('/doc', { config: { meter: { feature: 'egress_bytes', value: 'responseBytes' } } }, async () => DOC)
  const url = await listen(app)
  const buffered = await call(`${url}/doc`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(buffered.headers['content-encoding'], 'gzip')
  t.ok(buffered.body.length < 1_000)
  const plain = await call(`${url}/doc`)
  t.equal(plain.body.length, 5_000, 'a client that accepts no encoding gets the raw body')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'egress_bytes'), String(buffered.body.length + 5_000))
})

t.test('responseBytes of a body sent with trailers (chunked) counts the body alone', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  app.get('/doc', { config: { meter: { feature: 'egress_bytes', value: 'responseBytes' } } }, async (_request, reply) => {
    reply.trailer('x-checksum', async () => 'abc')
    return DOC
  })
  const url = await listen(app)
  const response = await request(`${url}/doc`, { headers: { 'x-agreement': 'agr_1' } })
  t.equal((await response.body.text()).length, 5_000)
  t.equal(response.headers['transfer-encoding'], 'chunked')
  t.same(response.trailers, { 'x-checksum': 'abc' })
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '5000', 'neither chunk framing nor the trailer')
})

t.test('a hijacked reply meters its declared content-length; without one its responseBytes is refused, never guessed', async t => {
  const kinde = await emulator(t)
  const app = await meteredApp(t, kinde)
  const meters = ['searches', { feature: 'egress_bytes', value: 'responseBytes' as const }]
  app.get('/declared', { config: { meter: meters } }, async (_request, reply) => {
    reply.hijack()
    reply.raw.setHeader('content-length', '5')
    reply.raw.end('hello')
  })
  app.get('/undeclared', { config: { meter: meters } }, async (_request, reply) => {
    reply.hijack()
    reply.raw.end('hello')
  })
  const url = await listen(app)
  t.equal((await call(`${url}/declared`)).body.toString(), 'hello')
  t.equal((await call(`${url}/undeclared`)).body.toString(), 'hello')
  await app.metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '2', 'both responses count as calls')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '5')
  t.equal(app.metering.stats().refused.invalidValue, 1, 'the undeclared size is counted as refused')
})
