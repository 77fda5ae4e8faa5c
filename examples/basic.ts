/**
 * The basic integration: a Fastify API whose routes say what they meter, billed to the Kinde
 * billing customer behind each caller's API key.
 *
 *   npm run build && npx tsx examples/basic.ts
 *   curl -H 'x-api-key: acme-key' 'http://127.0.0.1:3000/search?q=kinde'
 *   curl -H 'x-api-key: acme-key' http://127.0.0.1:3000/reports/7/export
 *   curl http://127.0.0.1:3000/metering          # pending, sent and dropped usage
 *
 * Without KINDE_DOMAIN it bills the local Kinde emulator and, when stopped (Ctrl-C), prints what
 * Kinde recorded. With KINDE_DOMAIN, KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET
 * it bills your Kinde business: map your API keys to your Kinde billing customers below, and
 * give their plan the features `searches` and `export_bytes`.
 */
import Fastify from 'fastify'
import kindeMetering, { type CustomerRef } from 'kinde-metering'
import { exampleKinde, examplePort, runWhenExecuted, type RunningExample } from './runner.js'

/** API keys and the Kinde billing customer each bills; a real API keeps this in its database. */
const customersByApiKey = new Map<string, CustomerRef>([
  ['acme-key', { customerId: 'customer_acme' }],
  ['globex-key', { customerId: 'customer_globex' }]
])

export async function start (): Promise<RunningExample> {
  const kinde = await exampleKinde({
    agreements: [
      { id: 'agreement_acme', customerId: 'customer_acme', features: ['searches', 'export_bytes'] },
      { id: 'agreement_globex', customerId: 'customer_globex', features: ['searches', 'export_bytes'] }
    ]
  })

  const app = Fastify({ logger: { level: 'warn' } })
  await app.register(kindeMetering, {
    ...kinde.connection,
    // Who pays for a request. Returning undefined leaves it unmetered (here: no or unknown key).
    // The customer id is resolved to its agreement at flush time, never on the request path.
    customer: request => customersByApiKey.get(String(request.headers['x-api-key']))
  })

  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/metering')) return
    if (!customersByApiKey.has(String(request.headers['x-api-key']))) {
      return reply.code(401).send({ error: 'a valid x-api-key header is required' })
    }
  })

  // +1 `searches` per successful response (status below 400).
  app.get('/search', { config: { meter: 'searches' } }, async request => {
    const { q = '' } = request.query as { q?: string }
    return { query: q, hits: [`${q} in the docs`, `${q} in the blog`] }
  })

  // The response body's size in bytes, as `export_bytes`.
  app.get('/reports/:id/export', { config: { meter: { feature: 'export_bytes', value: 'responseBytes' } } }, async (request, reply) => {
    const { id } = request.params as { id: string }
    const rows = Array.from({ length: 20 }, (_, i) => `${id},${i + 1},${(i * 9.5).toFixed(2)}`)
    return reply.type('text/csv').send(['report,line,amount', ...rows].join('\n') + '\n')
  })

  // Unmetered: what is waiting to be sent to Kinde, what was sent and what was dropped.
  app.get('/metering', async () => app.metering.stats())

  const url = await app.listen({ host: '127.0.0.1', port: examplePort() })
  return {
    app,
    url,
    kinde,
    try: {
      search: `curl -H 'x-api-key: acme-key' '${url}/search?q=kinde'`,
      export: `curl -H 'x-api-key: acme-key' ${url}/reports/7/export`,
      stats: `curl ${url}/metering`
    }
  }
}

runWhenExecuted(import.meta.url, start)
