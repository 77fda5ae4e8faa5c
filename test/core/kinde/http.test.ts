/**
 * The connection pool to Kinde as a user meets it: the domains it reaches and what a failed
 * request says in the logs.
 */
import t from 'tap'
import type { Test } from 'tap'
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { KindeEmulator } from '../../../lib/testing.js'
import { getToken } from '../../helpers/emulator.js'
import type { DroppedRecord } from '../../../lib/index.js'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'
import { coreOnStandIn, standIn } from './stand-in.js'

/** A TCP relay on IPv6 loopback to the emulator (which listens on 127.0.0.1 only): its port, and the connections it was asked for. */
async function ipv6Relay (t: Test, kinde: KindeEmulator): Promise<{ port: number, connections: () => number, sockets: Socket[] }> {
  const target = new URL(kinde.url)
  let connections = 0
  const sockets: Socket[] = []
  const relay = createServer(socket => {
    connections++
    sockets.push(socket)
    const upstream = connect(Number(target.port), target.hostname)
    socket.pipe(upstream).pipe(socket)
    socket.on('error', () => upstream.destroy())
    upstream.on('error', () => socket.destroy())
  })
  await new Promise<void>(resolve => relay.listen(0, '::1', resolve))
  t.teardown(() => new Promise(resolve => relay.close(resolve)))
  return { port: (relay.address() as AddressInfo).port, connections: () => connections, sockets }
}

t.test('a domain given as an IPv6 address in brackets is reached', async t => {
  const kinde = await emulator(t)
  const { port } = await ipv6Relay(t, kinde)
  const core = coreOn(t, kinde, { domain: `http://[::1]:${port}`, accessToken: await getToken(kinde) })
  core.record({ agreementId: 'agr_1' }, 'searches', 2)
  t.match(await core.flush(), { sent: 1, pending: 0 })
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})

t.test('connections to Kinde are kept open and reused: a flush of 40 records opens no more than concurrency of them', async t => {
  const kinde = await emulator(t, { customers: 40 })
  const relay = await ipv6Relay(t, kinde)
  const core = coreOn(t, kinde, { domain: `http://[::1]:${relay.port}`, accessToken: await getToken(kinde), concurrency: 2 })
  for (let i = 1; i <= 40; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  t.match(await core.flush(), { sent: 40 })
  t.ok(relay.connections() <= 2, `40 sends over ${relay.connections()} connection(s)`)
})

t.test('close() closes the connections kept open to Kinde at once, not when they would have idled out', async t => {
  const kinde = await emulator(t, { customers: 3 })
  const relay = await ipv6Relay(t, kinde)
  const core = coreOn(t, kinde, { domain: `http://[::1]:${relay.port}`, accessToken: await getToken(kinde) })
  for (let i = 1; i <= 3; i++) core.record({ agreementId: `agr_${i}` }, 'searches', 1)
  t.match(await core.flush(), { sent: 3 })
  const open = relay.sockets.filter(socket => !socket.destroyed)
  t.ok(open.length > 0, 'connections stay open between flushes')
  const closed = Promise.all(open.map(async socket => await once(socket, 'close')))
  await core.close()
  // An idle connection would otherwise stay open 4 s.
  let timer: NodeJS.Timeout | undefined
  const idledOut = new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('still open 2 s after close()')), 2_000) })
  await Promise.race([closed, idledOut]).finally(() => clearTimeout(timer))
  t.equal(relay.sockets.filter(socket => !socket.destroyed).length, 0, 'every connection closed with the core')
})

t.test('a request that found no server is logged with Node\'s own error as its cause', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { accessToken: 'static-token', domain: 'http://127.0.0.1:1', logger, shutdownTimeout: 20 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1 })
  const warning = entries.find(entry => entry.level === 'warn' && /did not apply/.test(entry.msg ?? ''))
  t.match(warning?.obj.err, { errorCode: 'ECONNREFUSED', written: false, cause: { code: 'ECONNREFUSED', syscall: 'connect' } },
    'the cause keeps what Node said: the code and the system call that failed')
})

t.test('an answer is parsed as JSON only when it says it is JSON: other bodies are kept as the text sent', async t => {
  const answers = [
    { label: 'text that happens to parse', answer: { status: 400, headers: { 'content-type': 'text/plain' }, body: '{"errors":[]}' } },
    { label: 'no content type at all', answer: { status: 400, body: 'bad record' } },
    { label: 'JSON with an empty body', answer: { status: 400, headers: { 'content-type': 'application/json' }, body: '' } }
  ]
  for (const { label, answer } of answers) {
    t.test(label, async t => {
      const kinde = await standIn(t, request => request.url === '/oauth2/token' ? undefined : answer)
      const drops: DroppedRecord[] = []
      const core = coreOnStandIn(t, kinde.url, { onDrop: records => { drops.push(...records) } })
      core.record({ agreementId: 'agr_1' }, 'searches', 1)
      t.match(await core.flush(), { sent: 0, dropped: 1 })
      t.same(drops.map(record => record.error?.body), [answer.body], 'Kinde\'s body, as text')
    })
  }
})

t.test('an answer cut off in its body is an ambiguous failure like a reset: the send is retried, nothing crashes', async t => {
  let sends = 0
  const server = createHttpServer((request, response) => {
    request.resume().on('end', () => {
      if (request.url === '/oauth2/token') return response.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"t","expires_in":3600}')
      if (++sends > 1) return response.writeHead(200, { 'content-type': 'application/json' }).end('{"code":"OK"}')
      // Headers and half a body, then the connection goes.
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '64' })
      response.write('{"message":"Succ', () => response.socket?.destroy())
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  const core = coreOnStandIn(t, `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1, pending: 0 })
  t.equal(core.stats().failures.ambiguous, 1, 'the cut-off answer may have been applied: counted as ambiguous')
  t.equal(sends, 2)
})
