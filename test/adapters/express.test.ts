/**
 * The Express middleware, on real Express servers listening on 127.0.0.1, delivering to the Kinde
 * emulator over HTTP.
 */
import t, { type Test } from 'tap'
import express, { type Express, type Request } from 'express'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { createServer as createHttpsServer, get as httpsGet } from 'node:https'
import { connect, type AddressInfo } from 'node:net'
import { Readable, pipeline } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { kindeMetering, meter, type KindeMeteringMiddleware, type KindeMeteringOptions } from '../../lib/express.js'
import { InvalidOptionError } from '../../lib/index.js'
import type { KindeEmulator } from '../../lib/testing.js'
import { emulator, memoryLogger } from '../fixtures.js'
import { plainEnv } from '../helpers/processes.js'

/** Options pointing at the emulator, billing the agreement in header `x-agreement`, never flushing on their own. */
function expressOptions (kinde: KindeEmulator, extra: KindeMeteringOptions = {}): KindeMeteringOptions {
  return {
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    customer: req => {
      const id = req.headers['x-agreement']
      return typeof id === 'string' ? { agreementId: id } : undefined
    },
    flushInterval: 3_600_000,
    retry: { baseDelay: 1, maxDelay: 5 },
    ...extra
  }
}

/** An Express app with the middleware registered first; the middleware is closed at teardown. */
function meteredApp (t: Test, kinde: KindeEmulator, extra: KindeMeteringOptions = {}): { app: Express, metering: KindeMeteringMiddleware } {
  const metering = kindeMetering(expressOptions(kinde, extra))
  t.teardown(() => metering.close())
  const app = express()
  app.use(metering)
  return { app, metering }
}

/** Serves `app` on 127.0.0.1 (closed at teardown); returns its base URL. */
async function listen (t: Test, app: Express): Promise<{ url: string, server: Server, port: number }> {
  const server = createServer(app).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, server, port }
}

/** GET (or another method) with the agreement header; resolves with status and body once the response ended. */
async function call (url: string, agreement?: string, init: RequestInit = {}): Promise<{ status: number, body: string }> {
  const headers = new Headers(init.headers)
  if (agreement !== undefined) headers.set('x-agreement', agreement)
  const response = await fetch(url, { ...init, headers })
  return { status: response.status, body: await response.text() }
}

/** GET with the agreement header; resolves with the body's length in bytes. */
async function bodyBytes (url: string, agreement: string): Promise<number> {
  const response = await fetch(url, { headers: { 'x-agreement': agreement } })
  return (await response.arrayBuffer()).byteLength
}

/** The process warnings emitted while the test runs. */
function collectWarnings (t: Test): Error[] {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  return warnings
}

/** Sends raw bytes on a fresh connection and resolves with everything the server answered once it closes. */
async function raw (port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.end(text)
  let answer = ''
  socket.setEncoding('latin1').on('data', chunk => { answer += chunk })
  await once(socket, 'close')
  return answer
}

t.test('each meter form sums exactly per agreement and feature', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  app.get('/search', meter('searches'), (_req, res) => { res.json({ hits: [] }) })
  app.get('/export', meter({ feature: 'egress_bytes', value: 'responseBytes' }), (_req, res) => { res.send('x'.repeat(1000)) })
  app.get('/render', meter(['renders', { feature: 'cpu_ms', value: () => 2.5 }]), (_req, res) => { res.send('ok') })
  app.post('/upload', meter({ feature: 'request_bytes', value: 'requestBytes' }), (req, res) => { req.resume().on('end', () => res.send('ok')) })
  app.get('/free', (_req, res) => { res.send('not metered') })
  const { url } = await listen(t, app)

  for (let i = 0; i < 5; i++) await call(`${url}/search`, 'agr_1')
  for (let i = 0; i < 2; i++) await call(`${url}/search`, 'agr_2')
  t.same(await call(`${url}/export`, 'agr_1'), { status: 200, body: 'x'.repeat(1000) })
  for (let i = 0; i < 4; i++) await call(`${url}/render`, 'agr_3')
  const upload = JSON.stringify({ data: 'y'.repeat(100) })
  await call(`${url}/upload`, 'agr_2', { method: 'POST', body: upload })
  await call(`${url}/free`, 'agr_1')
  await call(`${url}/search`) // no customer: not metered

  t.equal(metering.stats().pending.pairs, 6)
  const outcome = await metering.flush()
  t.equal(outcome.sent, 6)
  t.equal(kinde.usage('agr_1', 'searches'), '5')
  t.equal(kinde.usage('agr_2', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '1000')
  t.equal(kinde.usage('agr_3', 'renders'), '4')
  t.equal(kinde.usage('agr_3', 'cpu_ms'), '10')
  t.equal(kinde.usage('agr_2', 'request_bytes'), String(Buffer.byteLength(upload)))
  t.equal(kinde.records.length, 6, 'one record per (agreement, feature)')
  for (const record of kinde.records) t.equal(record.meter_type_code, 'delta')
  t.equal(metering.stats().pending.pairs, 0)
  t.equal(metering.metering.stats().sent.records, 6, 'metering is the core instance')
})

t.test('responseBytes counts body bytes exactly, however the body is written', async t => {
  const kinde = await emulator(t, { customers: 10 })
  const { app, metering } = meteredApp(t, kinde)
  const bytes = meter({ feature: 'egress_bytes', value: 'responseBytes' })
  const body = Buffer.alloc(700, 'b')
  app.get('/send', bytes, (_req, res) => { res.send('é'.repeat(50)) }) // Content-Length, 100 bytes
  app.get('/end', bytes, (_req, res) => { res.end(body) }) // Node's own Content-Length, not a header the app set
  app.get('/piped', bytes, (_req, res) => {
    // Chunked: one frame per chunk; the empty chunk adds no frame.
    Readable.from([Buffer.alloc(300), Buffer.alloc(0), 'ü'.repeat(10), Buffer.alloc(5000)]).pipe(res)
  })
  app.get('/pipeline', bytes, (_req, res) => {
    pipeline(Readable.from([Buffer.alloc(16), Buffer.alloc(17), Buffer.alloc(65536)]), res, () => {})
  })
  app.get('/empty', bytes, (_req, res) => { res.status(204).end() })
  app.get('/cached', bytes, (_req, res) => { res.set('ETag', '"v1"').send('cached body') })
  const { url, port } = await listen(t, app)

  await call(`${url}/send`, 'agr_1')
  t.equal(await bodyBytes(`${url}/end`, 'agr_2'), 700)
  t.equal(await bodyBytes(`${url}/piped`, 'agr_3'), 300 + 20 + 5000)
  await call(`${url}/pipeline`, 'agr_4')
  t.same(await call(`${url}/send`, 'agr_5', { method: 'HEAD' }), { status: 200, body: '' }, 'HEAD sends no body')
  t.equal((await call(`${url}/empty`, 'agr_5')).status, 204)
  // fetch() sends `cache-control: no-cache`, which defeats the freshness check: a raw request instead.
  const notModified = await raw(port, 'GET /cached HTTP/1.1\r\nhost: x\r\nif-none-match: "v1"\r\nx-agreement: agr_5\r\nconnection: close\r\n\r\n')
  t.match(notModified, /^HTTP\/1\.1 304 Not Modified\r\n/)
  // HTTP/1.0 cannot be chunked: the streamed body runs until the connection closes.
  const http10 = await raw(port, 'GET /piped HTTP/1.0\r\nx-agreement: agr_6\r\n\r\n')
  t.match(http10, /^HTTP\/1\.1 200 OK\r\n/)
  t.notMatch(http10, /transfer-encoding/i)
  // Two pipelined requests on one connection: the second response waits for the first's connection.
  const pipelined = await raw(port, 'GET /piped HTTP/1.1\r\nhost: x\r\nx-agreement: agr_7\r\n\r\n' +
    'GET /end HTTP/1.1\r\nhost: x\r\nx-agreement: agr_8\r\nconnection: close\r\n\r\n')
  t.equal(pipelined.match(/HTTP\/1\.1 200 OK/g)?.length, 2)

  await metering.flush()
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '100', 'res.send: Content-Length, multi-byte characters as bytes')
  t.equal(kinde.usage('agr_2', 'egress_bytes'), '700', 'res.end(buffer) with no header set')
  t.equal(kinde.usage('agr_3', 'egress_bytes'), '5320', 'a piped stream, chunked: framing excluded')
  t.equal(kinde.usage('agr_4', 'egress_bytes'), String(16 + 17 + 65536), 'stream.pipeline')
  t.equal(kinde.usage('agr_5', 'egress_bytes'), '0', 'HEAD, 204 and 304 carry no body')
  t.equal(kinde.usage('agr_6', 'egress_bytes'), '5320', 'HTTP/1.0, not chunked')
  t.equal(kinde.usage('agr_7', 'egress_bytes'), '5320', 'first of two pipelined responses')
  t.equal(kinde.usage('agr_8', 'egress_bytes'), '700', 'second of two pipelined responses')
})

/** A throwaway self-signed P-256 key and certificate for 127.0.0.1, valid until 2126: test-only. */
const TLS = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguOqWsiY4SQHZHzn5
lG3oYBTwaNC2katoiUj6kJZIys2hRANCAARhElUe7yLtSWEUB0jBOVBjVzPMaG4h
N807N6NhyC7oXq3wZKfd2DuO3sx4o2rgpOnxI8sjtdWR7PNcNRgjlgLF
-----END PRIVATE KEY-----`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBgDCCASWgAwIBAgIUV4yhXffM7qXgn0TT8b8jGinR7nUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyNjA3MzMzMVoYDzIxMjYxMTAy
MDczMzMxWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARhElUe7yLtSWEUB0jBOVBjVzPMaG4hN807N6NhyC7oXq3wZKfd2DuO
3sx4o2rgpOnxI8sjtdWR7PNcNRgjlgLFo1MwUTAdBgNVHQ4EFgQUDk1KdqoTLMcz
3gXLtYIpQ7i9nZswHwYDVR0jBBgwFoAUDk1KdqoTLMcz3gXLtYIpQ7i9nZswDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA80goCsfJp+l3tKs6hxQY
iKpMW3RsBphL2Gs8zO4I5OsCIQCyxm2Orh2xMfJxoTTJx1IQRfb047Oc89PPZKSY
3UAN6A==
-----END CERTIFICATE-----`
}

t.test('responseBytes over HTTPS counts the body, not the encrypted bytes', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  const bytes = meter({ feature: 'egress_bytes', value: 'responseBytes' })
  app.get('/piped', bytes, (_req, res) => { Readable.from([Buffer.alloc(300), Buffer.alloc(5000)]).pipe(res) })
  app.get('/end', bytes, (_req, res) => { res.end(Buffer.alloc(700)) })
  const server = createHttpsServer(TLS, app).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const { port } = server.address() as AddressInfo
  for (const [path, agreement] of [['/piped', 'agr_1'], ['/end', 'agr_2']]) {
    await new Promise<void>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port, path, headers: { 'x-agreement': agreement }, rejectUnauthorized: false }, response => {
        response.resume().on('end', resolve)
      }).on('error', reject)
    })
  }
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'egress_bytes'), '5300')
  t.equal(kinde.usage('agr_2', 'egress_bytes'), '700')
})

t.test('a chunked body written with res.write() counts its chunk framing too: the documented approximation', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  app.get('/events', meter({ feature: 'egress_bytes', value: 'responseBytes' }), (_req, res) => {
    res.write(Buffer.alloc(100))
    res.write('x'.repeat(100))
    res.end(Buffer.alloc(100))
  })
  const { url } = await listen(t, app)
  t.equal(await bodyBytes(`${url}/events`, 'agr_1'), 300)
  await metering.flush()
  // Each write of 100 (0x64) bytes is framed as "64\r\n…\r\n": 2 + 4 bytes more.
  t.equal(kinde.usage('agr_1', 'egress_bytes'), String(300 + 3 * 6))
})

/** Calls `/slow` (a handler answering after `waitMs`) and checks the billed `cpu_ms` lies between the wait and the round trip. */
async function billsTheWait (t: Test, kinde: KindeEmulator, app: Express, metering: KindeMeteringMiddleware, waitMs: number): Promise<void> {
  const { url } = await listen(t, app)
  const started = performance.now()
  await call(`${url}/slow`, 'agr_1')
  const roundTrip = performance.now() - started
  await metering.flush()
  const duration = Number(kinde.usage('agr_1', 'cpu_ms'))
  t.ok(duration >= waitMs - 1 && duration <= roundTrip, `a handler that waits ${waitMs} ms bills ${duration} ms, within the round trip of ${roundTrip} ms`)
}

t.test('durationMs meters the time from the middleware to the finished response', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  app.get('/slow', meter({ feature: 'cpu_ms', value: 'durationMs' }), (_req, res) => {
    setTimeout(() => res.send('ok'), 50)
  })
  await billsTheWait(t, kinde, app, metering, 50)
})

t.test('a meter() made while a request is served times durationMs from where it runs', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  // The middleware saw this request before any meter() metered durationMs.
  app.get('/slow', (req, res, next) => { meter({ feature: 'cpu_ms', value: 'durationMs' })(req, res, next) }, (_req, res) => {
    setTimeout(() => res.send('ok'), 30)
  })
  await billsTheWait(t, kinde, app, metering, 30)
})

t.test('failed statuses are not counted by route meters; res.meter always counts', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  app.get('/search', meter('searches'), (req, res) => {
    res.meter('llm_tokens', 10)
    const fail = Number(req.query.fail ?? 200)
    if (fail === 302) res.redirect('/elsewhere')
    else res.status(fail).send('body')
  })
  app.get('/throws', meter('searches'), () => { throw new Error('handler failed') })
  app.use((_error: unknown, _req: Request, res: express.Response, _next: express.NextFunction) => { res.status(500).send('failed') })
  const { url } = await listen(t, app)
  await call(`${url}/search`, 'agr_1')
  await call(`${url}/search?fail=404`, 'agr_1')
  await call(`${url}/search?fail=500`, 'agr_1')
  await call(`${url}/search?fail=302`, 'agr_1', { redirect: 'manual' })
  t.equal((await call(`${url}/throws`, 'agr_1')).status, 500)
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '2', '200 and 302 count; 404, 500 and a thrown error do not')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '40')
})

t.test('countStatus changes which responses route meters count', async t => {
  const kinde = await emulator(t)
  const asked: number[] = []
  const { app, metering } = meteredApp(t, kinde, { countStatus: status => { asked.push(status); return status === 201 || status === 404 } })
  app.get('/search', meter('searches'), (req, res) => { res.status(Number(req.query.status)).send('x') })
  const { url } = await listen(t, app)
  for (const status of [200, 201, 404, 500]) await call(`${url}/search?status=${status}`, 'agr_1')
  await metering.flush()
  t.same(asked, [200, 201, 404, 500], 'asked once per response, with its status')
  t.equal(kinde.usage('agr_1', 'searches'), '2', 'only the 201 and the 404 counted')
})

t.test('a request whose client leaves before the response finishes is not counted; its res.meter amounts are', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  const serverSawClose: Array<Promise<void>> = []
  const handlerRunning: Array<() => void> = []
  app.get('/slow', meter('searches'), (req, res) => {
    res.meter('llm_tokens', 5) // the work was done: billed whether or not the client waits
    serverSawClose.push(new Promise(resolve => {
      res.on('close', () => {
        // The handler carries on after the client left, as real ones do.
        if (req.query.headers === 'sent') res.end('late')
        else res.send('late')
        resolve()
      })
    }))
    if (req.query.headers === 'sent') res.write('partial')
    handlerRunning.shift()!()
  })
  const { url } = await listen(t, app)
  for (const headers of ['sent', 'none']) {
    const running = new Promise<void>(resolve => handlerRunning.push(resolve))
    const clientRequest = httpRequest(`${url}/slow?headers=${headers}`, { headers: { 'x-agreement': 'agr_1' } })
    clientRequest.on('error', () => {}).end()
    await running
    clientRequest.destroy()
    await serverSawClose.at(-1)
  }
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '0', 'neither aborted request was counted')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '10', 'res.meter amounts of both were')
})

t.test('decimals from res.meter sum without float drift', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  app.post('/chat', (_req, res) => { res.meter('llm_tokens', 0.1).meter('llm_tokens', 0.2).send('ok') })
  const { url } = await listen(t, app)
  for (let i = 0; i < 100; i++) await call(`${url}/chat`, 'agr_1', { method: 'POST' })
  t.equal(metering.stats().pending.units, '30')
  await metering.flush()
  t.equal(kinde.records[0].meter_value, '30')
})

t.test('meter() used as app.use middleware meters every request under its path', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const { app, metering } = meteredApp(t, kinde, { logger })
  app.use('/api', meter('searches'))
  app.get('/api/a', (_req, res) => { res.send('a') })
  app.get('/api/b', meter({ feature: 'renders', value: () => -1 }), (_req, res) => { res.send('b') })
  app.use('/api/files', (_req, res) => { res.meter('llm_tokens', -1).send('answered by middleware, not a route') })
  app.get('/other', (_req, res) => { res.send('other') })
  const { url } = await listen(t, app)
  await call(`${url}/api/a`, 'agr_1')
  await call(`${url}/api/b`, 'agr_1')
  await call(`${url}/api/files/x`, 'agr_1')
  await call(`${url}/other`, 'agr_1')
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.same(entries.filter(entry => entry.level === 'warn').map(entry => [entry.obj.origin, entry.obj.feature]),
    [['GET /api/b', 'renders'], ['GET *', 'llm_tokens']], 'logs name the route, or * outside routes')
})

t.test('routers and mounted sub-apps meter through the middleware registered on the main app', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  const router = express.Router()
  router.get('/search', meter('searches'), (_req, res) => { res.send('router') })
  const sub = express() // a sub-app swaps the prototype of res for its own, which inherits from the main app's
  sub.post('/chat', meter('renders'), (_req, res) => { res.meter('llm_tokens', 2).send('sub-app') })
  const inner = express() // mounted in the sub-app: two swaps away from the middleware's app
  inner.get('/deep', meter('renders'), (_req, res) => { res.meter('llm_tokens', 3).send('inner') })
  sub.use('/in', inner)
  app.use('/v1', router)
  app.use('/sub', sub)
  const { url } = await listen(t, app)
  t.same(await call(`${url}/v1/search`, 'agr_1'), { status: 200, body: 'router' })
  t.same(await call(`${url}/sub/chat`, 'agr_1', { method: 'POST' }), { status: 200, body: 'sub-app' })
  t.same(await call(`${url}/sub/in/deep`, 'agr_1'), { status: 200, body: 'inner' })
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1')
  t.equal(kinde.usage('agr_1', 'renders'), '2')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '5')
})

t.test('two middlewares in one app each meter the requests that went through them', async t => {
  const kinde = await emulator(t)
  const first = kindeMetering(expressOptions(kinde))
  const second = kindeMetering(expressOptions(kinde))
  t.teardown(() => Promise.all([first.close(), second.close()]))
  const one = express.Router()
  one.use(first)
  one.get('/a', meter('searches'), (_req, res) => { res.meter('llm_tokens', 1).send('a') })
  const two = express.Router()
  two.use(second)
  two.get('/b', meter('renders'), (_req, res) => { res.meter('llm_tokens', 10).send('b') })
  const app = express()
  app.use('/one', one)
  app.use('/two', two)
  const { url } = await listen(t, app)
  for (const path of ['/one/a', '/two/b', '/one/a', '/two/b', '/two/b']) t.equal((await call(`${url}${path}`, 'agr_1')).status, 200)
  t.equal((await first.flush()).sent, 2, 'the first middleware: searches and llm_tokens')
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '2')
  t.equal((await second.flush()).sent, 2, 'the second: renders and llm_tokens')
  t.equal(kinde.usage('agr_1', 'renders'), '3')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '32')
})

t.test('the middleware meters a plain node:http server too', async t => {
  const kinde = await emulator(t)
  const metering = kindeMetering(expressOptions(kinde))
  t.teardown(() => metering.close())
  const searches = meter('searches')
  const server = createServer((req, res) => {
    metering(req as Request, res as express.Response, () => {
      searches(req as Request, res as express.Response, () => {
        ;(res as express.Response).meter('llm_tokens', 3)
        res.end('plain')
      })
    })
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.same(await call(url, 'agr_1'), { status: 200, body: 'plain' })
  t.same(await call(url, 'agr_1'), { status: 200, body: 'plain' })
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '6')
})

t.test('bad meter values are counted and logged once per route and feature, and the response is unaffected', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const { app, metering } = meteredApp(t, kinde, { logger })
  app.get('/bad', meter({ feature: 'cpu_ms', value: () => -1 }), (_req, res) => { res.meter('llm_tokens', NaN).send('fine') })
  app.get('/throws', meter({ feature: 'cpu_ms', value: () => { throw new Error('boom') } }), (_req, res) => { res.send('fine too') })
  app.get('/no-body', meter({ feature: 'request_bytes', value: 'requestBytes' }), (_req, res) => { res.send('nothing uploaded') })
  const { url } = await listen(t, app)
  for (let i = 0; i < 3; i++) t.same(await call(`${url}/bad`, 'agr_1'), { status: 200, body: 'fine' })
  t.same(await call(`${url}/throws`, 'agr_1'), { status: 200, body: 'fine too' })
  await call(`${url}/no-body`, 'agr_1')
  t.equal(metering.stats().refused.invalidValue, 7)
  t.equal(entries.filter(entry => entry.level === 'warn' && /not recorded/.test(entry.msg ?? '')).length, 3, 'one per route and feature')
  await metering.flush()
  t.equal(kinde.records.length, 0, 'a request without a body adds no request bytes')
})

t.test('a throwing or rejecting customer function leaves the response untouched', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const { app, metering } = meteredApp(t, kinde, {
    logger,
    customer: req => {
      const mode = req.headers['x-mode']
      if (mode === 'reject') return Promise.reject(new Error('lookup down'))
      if (mode === 'async') return Promise.resolve({ agreementId: 'agr_2' })
      if (mode === 'none') return Promise.resolve(undefined)
      throw new Error('no customer here')
    }
  })
  app.get('/search', meter('searches'), (_req, res) => { res.json({ ok: true }) })
  app.get('/chat', (_req, res) => { res.meter('llm_tokens', 3).json({ ok: true }) })
  const { url } = await listen(t, app)
  t.same(await call(`${url}/search`), { status: 200, body: '{"ok":true}' })
  t.same(await call(`${url}/search`, undefined, { headers: { 'x-mode': 'reject' } }), { status: 200, body: '{"ok":true}' })
  t.same(await call(`${url}/chat`), { status: 200, body: '{"ok":true}' })
  await call(`${url}/search`, undefined, { headers: { 'x-mode': 'async' } })
  await call(`${url}/chat`, undefined, { headers: { 'x-mode': 'async' } })
  await call(`${url}/search`, undefined, { headers: { 'x-mode': 'none' } })
  await new Promise(resolve => setImmediate(resolve)) // the customer promises settle after the response
  t.equal(metering.stats().refused.customerError, 3)
  t.same(entries.filter(entry => entry.level === 'error' && /customer function/.test(entry.msg ?? '')).map(entry => entry.obj.origin),
    ['GET /search', 'GET /chat'], 'logged once per route')
  await metering.flush()
  t.equal(kinde.usage('agr_2', 'searches'), '1')
  t.equal(kinde.usage('agr_2', 'llm_tokens'), '3')
})

t.test('a throwing countStatus is logged once and never reaches the request or the process', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const { app, metering } = meteredApp(t, kinde, { logger, countStatus: () => { throw new Error('bad predicate') } })
  app.get('/search', meter('searches'), (_req, res) => { res.send('ok') })
  const { url } = await listen(t, app)
  t.same(await call(`${url}/search`, 'agr_1'), { status: 200, body: 'ok' })
  t.same(await call(`${url}/search`, 'agr_1'), { status: 200, body: 'ok' })
  t.equal(entries.filter(entry => entry.level === 'error' && /countStatus threw/.test(entry.msg ?? '')).length, 1)
  t.equal(metering.stats().refused.countStatusError, 2, 'both responses counted')
  await metering.flush()
  t.equal(kinde.records.length, 0)
})

t.test('without a customer option, the verified token bills its organization, else its user', async t => {
  const kinde = await emulator(t, {
    users: [{ id: 'kp_user', customerId: 'cus_1' }],
    organizations: [{ code: 'org_acme', customerId: 'cus_2' }]
  })
  const { customer: _ignored, ...options } = expressOptions(kinde)
  const metering = kindeMetering(options)
  t.teardown(() => metering.close())
  const app = express()
  // Stands in for the auth middleware: express-oauth2-jwt-bearer, express-jwt or Passport.
  app.use((req, _res, next) => {
    const claims = req.headers['x-claims'] === undefined ? undefined : JSON.parse(String(req.headers['x-claims']))
    const where = req.headers['x-where']
    if (where === 'auth.payload') (req as any).auth = { payload: claims, header: { alg: 'RS256' }, token: 'x' }
    else if (where === 'auth') (req as any).auth = claims
    else if (where === 'user') (req as any).user = claims
    next()
  })
  app.use(metering)
  app.get('/search', meter('searches'), (_req, res) => { res.send('ok') })
  const { url } = await listen(t, app)
  const send = (where: string, claims?: object): Promise<unknown> =>
    call(`${url}/search`, undefined, { headers: { 'x-where': where, ...(claims && { 'x-claims': JSON.stringify(claims) }) } })
  await send('auth.payload', { sub: 'kp_user', org_code: 'org_acme' }) // org
  await send('auth.payload', { sub: 'kp_user' }) // user
  await send('auth', { sub: 'kp_user', org_code: 'org_acme' }) // org
  await send('user', { sub: 'kp_user' }) // user
  await send('user', { name: 'nobody' })
  await send('auth', { payload: 'not claims', sub: 'kp_user' }) // user
  await send('none')
  await metering.flush()
  t.equal(kinde.usage('agr_2', 'searches'), '2', 'org_code wins')
  t.equal(kinde.usage('agr_1', 'searches'), '3', 'else sub')
})

t.test('info logs: one line at creation, one per flush that sent something, none per request; refusals carry req.id', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const { app, metering } = meteredApp(t, kinde, { logger })
  const infos = (): typeof entries => entries.filter(entry => entry.level === 'info')
  t.same(infos().map(entry => entry.obj), [{ domain: kinde.url, flushInterval: 3_600_000, store: 'MemoryStore', journal: false }])
  t.equal(infos()[0].msg, `kinde-metering: metering, delivering to ${kinde.url} every 3600000 ms`)
  // A request-id middleware: express-request-id gives strings, pino-http numbers.
  app.use((req, _res, next) => { (req as Request & { id: unknown }).id = req.path === '/bad' ? 'req-7' : 8; next() })
  app.get('/search', meter('searches'), (_req, res) => { res.send('ok') })
  app.get('/bad', (_req, res) => { res.meter('llm_tokens', '5' as any).send('ok') })
  app.get('/unnamed', (_req, res) => { res.meter('', 1).send('ok') })
  const { url } = await listen(t, app)
  for (let i = 0; i < 20; i++) await call(`${url}/search`, 'agr_1')
  t.equal(infos().length, 1, 'a burst of requests logs nothing')
  await call(`${url}/bad`, 'agr_1')
  await call(`${url}/unnamed`, 'agr_1')
  t.match(entries.filter(entry => entry.level === 'warn'), [
    { obj: { origin: 'GET /bad', feature: 'llm_tokens', reqId: 'req-7' }, msg: /got "5" \(string\)$/ },
    { obj: { origin: 'GET /unnamed', feature: '', reqId: '8' }, msg: /feature must be a Kinde billing feature code, .*, got "" \(string\)$/ }
  ])
  await metering.flush()
  t.match(infos()[1], { obj: { records: 1, units: '20', dropped: 0, pending: 0 }, msg: 'kinde-metering: flush sent 1 record(s)' })
})

t.test('close() counts every drop of the close, by reason, not only shutdown drops', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde, { logger: memoryLogger().logger })
  app.get('/chat', (_req, res) => { res.meter('llm_tokens', 2).meter('not_a_feature', 1).send('ok') })
  const { url } = await listen(t, app)
  await call(`${url}/chat`, 'agr_1')
  const outcome = await metering.close()
  t.same(outcome, { sent: 1, dropped: 1, droppedByReason: { rejected: 1, ambiguous: 0, no_agreement: 0, overflow: 0, shutdown: 0 } },
    'the record Kinde refused during the close is in the outcome')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '2')
})

t.test('close() delivers everything pending; usage after close is refused and counted', async t => {
  const kinde = await emulator(t)
  const { app, metering } = meteredApp(t, kinde)
  app.get('/search', meter('searches'), (_req, res) => { res.send('ok') })
  app.get('/chat', (_req, res) => { res.meter('llm_tokens', 1).send('ok') })
  const { url } = await listen(t, app)
  for (let i = 0; i < 7; i++) await call(`${url}/search`, `agr_${(i % 3) + 1}`)
  await call(`${url}/chat`, 'agr_1')
  t.equal(metering.stats().pending.pairs, 4)
  const outcome = await metering.close()
  t.same(outcome, { sent: 4, dropped: 0, droppedByReason: { rejected: 0, ambiguous: 0, no_agreement: 0, overflow: 0, shutdown: 0 } })
  t.equal(kinde.usage('agr_1', 'searches'), '3')
  t.equal(kinde.usage('agr_2', 'searches'), '2')
  t.equal(kinde.usage('agr_3', 'searches'), '2')
  t.equal(kinde.usage('agr_1', 'llm_tokens'), '1')
  t.equal(metering.close(), metering.close(), 'idempotent')
  // A request served after close (the server was not closed first) is answered; its usage is refused and counted.
  await call(`${url}/chat`, 'agr_1')
  await call(`${url}/search`, 'agr_1')
  t.equal(metering.stats().refused.afterClose, 2)
})

t.test('bad options are rejected when the middleware is created, with the option named', async t => {
  const kinde = await emulator(t)
  const env = { ...process.env }
  t.teardown(() => { process.env = env })
  delete process.env.KINDE_DOMAIN
  delete process.env.KINDE_MANAGEMENT_CLIENT_ID
  delete process.env.KINDE_MANAGEMENT_CLIENT_SECRET
  const cases: Array<[string, object]> = [
    ['domain', { domain: undefined }],
    ['domain', { domain: 'https://acme.kinde.com/api' }],
    ['clientId', { clientId: '' }],
    ['clientSecret', { clientSecret: undefined }],
    ['flushInterval', { flushInterval: -1 }],
    ['customer', { customer: 'req.user' }],
    ['countStatus', { countStatus: 400 }],
    ['maxPendingPairs', { maxPendingPairs: 0.5 }],
    ['flushIntervalMs', { flushIntervalMs: 1_000 }],
    ['journal.fsynk', { journal: { dir: '/tmp/never-created', fsynk: true } }]
  ]
  for (const [option, bad] of cases) {
    const error = (() => {
      try {
        kindeMetering({ ...expressOptions(kinde), ...bad })
      } catch (e) {
        return e
      }
    })()
    t.type(error, InvalidOptionError, option)
    t.match(error, { code: 'KINDE_METERING_INVALID_OPTION', option, message: new RegExp(option.replace('.', '\\.')) })
    t.notMatch((error as Error).message, kinde.clientSecret, 'the secret never appears in errors')
  }
})

t.test('a meter naming no feature or a bad value fails when the route is defined', async t => {
  const bad: unknown[] = [undefined, [], { value: 2 }, { feature: '' }, 42, { feature: 'f', value: -1 }, { feature: 'f', value: 'bytes' }, ['ok', null]]
  for (const spec of bad) {
    t.throws(() => meter(spec as any), { name: 'InvalidOptionError', code: 'KINDE_METERING_INVALID_OPTION', option: 'meter' }, JSON.stringify(spec))
  }
})

t.test('meter() without the middleware warns once and leaves the response alone', async t => {
  const app = express()
  app.get('/search', meter('searches'), (_req, res) => { res.send('ok') })
  const { url } = await listen(t, app)
  const warnings = collectWarnings(t)
  t.same(await call(`${url}/search`), { status: 200, body: 'ok' })
  t.same(await call(`${url}/search`), { status: 200, body: 'ok' })
  await new Promise(resolve => setImmediate(resolve)) // warnings are emitted on the next tick
  t.equal(warnings.length, 1)
  t.match(warnings[0], { code: 'KINDE_METERING_NO_MIDDLEWARE', message: /GET \/search.*app\.use\(kindeMetering/ })
})

t.test('credentials and domain come from the environment', async t => {
  const kinde = await emulator(t)
  const env = { ...process.env }
  t.teardown(() => { process.env = env })
  process.env.KINDE_DOMAIN = kinde.url
  process.env.KINDE_MANAGEMENT_CLIENT_ID = kinde.clientId
  process.env.KINDE_MANAGEMENT_CLIENT_SECRET = kinde.clientSecret
  const metering = kindeMetering({ customer: () => ({ agreementId: 'agr_1' }) })
  t.teardown(() => metering.close())
  const app = express().use(metering).get('/search', meter('searches'), (_req: Request, res) => { res.send('ok') })
  const { url } = await listen(t, app)
  await call(`${url}/search`)
  await metering.flush()
  t.equal(kinde.usage('agr_1', 'searches'), '1')
})

t.test('importing kinde-metering or kinde-metering/express never loads express', async t => {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const script = `
    import { createRequire } from 'node:module'
    const main = await import('./lib/index.ts')
    const adapter = await import('./lib/express.ts')
    const loaded = Object.keys(createRequire(process.cwd() + '/').cache)
    console.log(JSON.stringify({
      fastifyPlugin: loaded.some(path => path.includes('/node_modules/fastify-plugin/')),
      express: loaded.some(path => path.includes('/node_modules/express/')),
      exports: [typeof main.kindeMetering, typeof adapter.kindeMetering, typeof adapter.meter]
    }))`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root, env: plainEnv()
  })
  let stdout = ''
  child.stdout.setEncoding('utf8').on('data', chunk => { stdout += chunk })
  const [code] = await once(child, 'close')
  t.equal(code, 0)
  t.same(JSON.parse(stdout), {
    fastifyPlugin: true, // the check sees modules loaded through import
    express: false,
    exports: ['function', 'function', 'function']
  })
})
