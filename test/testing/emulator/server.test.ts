/**
 * The request path and lifecycle (server.ts): unknown routes, keep-alive, shutdown, the port.
 */
import t from 'tap'
import { Agent, get } from 'node:http'
import { startKindeEmulator } from '../../../lib/testing.js'
import { start, getToken, apiGet } from '../../helpers/emulator.js'

t.test('unknown routes answer 404 with an errors object', async (t) => {
  const kinde = await start(t)
  const token = await getToken(kinde)
  const notFound = { status: 404, body: { errors: { code: 'ROUTE_NOT_FOUND', message: String } } }
  t.match(await apiGet(kinde, token, '/api/v1/billing/usage'), notFound)
  t.match(await apiGet(kinde, token, '/api/v1/billing/meter_usage'), notFound, 'wrong method')
  t.match(await apiGet(kinde, undefined, '/'), notFound)
  t.equal(kinde.calls.other, 3)
})

t.test('connections and shutdown', async (t) => {
  t.test('keep-alive connections are reused and close() ends them at once', async (t) => {
    const kinde = await startKindeEmulator()
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const fetchJwks = (): Promise<boolean> => new Promise((resolve, reject) => {
      const req = get(kinde.jwksUrl, { agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(req.reusedSocket))
      })
      req.on('error', reject)
    })
    t.equal(await fetchJwks(), false)
    t.equal(await fetchJwks(), true)
    const began = performance.now()
    await kinde.close()
    t.ok(performance.now() - began < 1000, 'close() does not wait for the idle connection to time out')
    await t.rejects(fetch(kinde.jwksUrl), 'the server no longer listens')
    await kinde.close()
    t.pass('closing twice is harmless')
  })

  t.test('listens on the port asked for, and fails when it is taken', async (t) => {
    const first = await start(t)
    const port = Number(new URL(first.url).port)
    await t.rejects(startKindeEmulator({ port }), { code: 'EADDRINUSE' })
    await first.close()
    const second = await start(t, { port })
    t.equal(second.url, `http://127.0.0.1:${port}`)
  })
})
