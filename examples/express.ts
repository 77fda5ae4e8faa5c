/**
 * kinde-metering with Express: `npm run build && npx tsx examples/express.ts` (it imports the
 * built package, as an app would).
 *
 * A small metered API on http://127.0.0.1:$PORT (default 3000):
 *   GET  /search   meter('searches'): +1 per successful response
 *   GET  /export   meter({ feature: 'egress_bytes', value: 'responseBytes' }): a streamed CSV
 *   POST /chat     res.meter('llm_tokens', n) from the handler, for {"prompt": "..."}
 *   GET  /health   the middleware's stats()
 * Who pays is the organization of the caller's access token. Real apps verify the token with
 * express-oauth2-jwt-bearer's `auth()`, which sets `req.auth.payload`, the claims kinde-metering
 * reads by default; this example stands in for it with an `x-demo-org` header, e.g.
 *   curl -H 'x-demo-org: org_demo' http://127.0.0.1:3000/search
 * Stop it with Ctrl-C (or SIGTERM): the server closes, then `metering.close()` delivers what is
 * pending.
 *
 * Without KINDE_DOMAIN it runs against the Kinde emulator of `kinde-metering/testing`, started
 * in-process with organization `org_demo` (customer `cus_demo`, agreement `agr_demo`), and prints
 * what the emulator recorded when it stops. With KINDE_DOMAIN, KINDE_MANAGEMENT_CLIENT_ID and
 * KINDE_MANAGEMENT_CLIENT_SECRET set (an M2M application with scopes create:meter_usage,
 * read:organizations and read:billing_agreements), it records real usage for the organization
 * codes callers send: use a test business.
 */
import express, { type NextFunction, type Request, type Response } from 'express'
import { Readable } from 'node:stream'
import { kindeMetering, meter } from 'kinde-metering/express'
import { startKindeEmulator, type KindeEmulator } from 'kinde-metering/testing'

const FEATURES = ['searches', 'egress_bytes', 'llm_tokens']

/** The emulator, when no Kinde domain is configured. */
async function startEmulator (): Promise<KindeEmulator> {
  const emulator = await startKindeEmulator({
    organizations: [{ code: 'org_demo', customerId: 'cus_demo' }],
    agreements: [{ id: 'agr_demo', customerId: 'cus_demo', features: FEATURES }]
  })
  console.log(`Kinde emulator on ${emulator.url} (set KINDE_DOMAIN and the M2M credentials to use Kinde)`)
  return emulator
}

/** Stand-in for express-oauth2-jwt-bearer's `auth()`: never trust a plain header in production. */
function demoAuth (req: Request, _res: Response, next: NextFunction): void {
  const org = req.headers['x-demo-org']
  if (typeof org === 'string') (req as Request & { auth?: unknown }).auth = { payload: { org_code: org } }
  next()
}

const emulator = process.env.KINDE_DOMAIN === undefined ? await startEmulator() : undefined

// Domain and credentials come from KINDE_DOMAIN, KINDE_MANAGEMENT_CLIENT_ID and _SECRET unless given.
const metering = kindeMetering({
  ...(emulator !== undefined && { domain: emulator.url, clientId: emulator.clientId, clientSecret: emulator.clientSecret }),
  flushInterval: 60_000 // one minute
})

const app = express()
app.use(metering) // first, so that it sees every request
app.use(demoAuth) // the customer is read when usage is recorded, by then authentication has run
app.use(express.json())

app.get('/search', meter('searches'), (req, res) => {
  res.json({ query: req.query.q ?? '', hits: [] })
})

app.get('/export', meter({ feature: 'egress_bytes', value: 'responseBytes' }), (_req, res) => {
  res.type('text/csv')
  // Streamed (chunked): the bytes are counted without buffering the body.
  Readable.from(['id,value\n', ...Array.from({ length: 100 }, (_, i) => `${i},${(i * 0.37).toFixed(2)}\n`)]).pipe(res)
})

app.post('/chat', (req, res) => {
  const prompt = typeof req.body?.prompt === 'string' ? req.body.prompt : ''
  const reply = `You said ${prompt.length} characters.`
  // Billed as soon as the work is done, even if the client leaves before the answer arrives.
  res.meter('llm_tokens', (prompt.length + reply.length) / 4)
  res.json({ reply })
})

app.get('/health', (_req, res) => {
  res.json(metering.stats())
})

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  console.log(`listening on http://127.0.0.1:${port}`)
  console.log(`try: curl -H 'x-demo-org: org_demo' http://127.0.0.1:${port}/search`)
})

async function shutdown (): Promise<void> {
  server.close()
  const { sent, dropped } = await metering.close() // the final flush
  console.log(`delivered ${sent} records to Kinde, ${dropped} dropped`)
  if (emulator !== undefined) {
    for (const feature of FEATURES) console.log(`Kinde recorded: agr_demo ${feature} ${emulator.usage('agr_demo', feature)}`)
    await emulator.close()
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { void shutdown() })
