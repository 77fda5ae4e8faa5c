/**
 * One variant of the measured server: a one-route Fastify app answering a small JSON, bare or
 * with one kind of per-request work. Runs in its own process; the harness reads its CPU time.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { answer, childConfig, tell } from './proc.js'
import { loadPackage } from './package.js'
import { CUSTOMER_HEADER, FEATURES } from './customers.js'

/**
 * - `bare`: the route alone;
 * - `hook`: plus an empty `onResponse` hook, the floor any hook-based plugin pays;
 * - `metering`: kinde-metering, customer from the header, two meters on the route;
 * - `rate-limit`: `@fastify/rate-limit` keyed by the same header (never reached);
 * - `naive`: one meter usage POST to Kinde per request, fire-and-forget, as one would write it
 *   without this package.
 */
export type Variant = 'bare' | 'hook' | 'metering' | 'rate-limit' | 'naive'

/** What the server process is started with. */
export interface ServerConfig {
  variant: Variant
  kinde: { url: string, clientId: string, clientSecret: string }
}

/** What `stats` answers after a run. */
export interface ServerStats {
  /** kinde-metering: distinct (customer, feature) pairs pending, i.e. records the next flush sends. */
  pendingPairs?: number
  /** kinde-metering: usage refused or dropped (should be 0). */
  lost?: number
  /** naive: meter usage POSTs started, answered 2xx, failed, and still unanswered. */
  posts?: { started: number, ok: number, failed: number, unanswered: number }
  /** Resident memory at the end, bytes. */
  rss: number
}

function customerId (headers: Record<string, string | string[] | undefined>): string | undefined {
  const id = headers[CUSTOMER_HEADER]
  return typeof id === 'string' ? id : undefined
}

async function naiveMetering (app: FastifyInstance, kinde: ServerConfig['kinde'], posts: NonNullable<ServerStats['posts']>): Promise<void> {
  const form = new URLSearchParams({
    grant_type: 'client_credentials', client_id: kinde.clientId, client_secret: kinde.clientSecret, audience: `${kinde.url}/api`
  })
  const tokenAnswer = await fetch(`${kinde.url}/oauth2/token`, { method: 'POST', body: form })
  const { access_token: token } = await tokenAnswer.json() as { access_token: string }
  const url = `${kinde.url}/api/v1/billing/meter_usage`
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  app.addHook('onResponse', (request, _reply, done) => {
    const id = customerId(request.headers)
    if (id !== undefined) {
      posts.started++
      const body = JSON.stringify({ customer_agreement_id: id, billing_feature_code: FEATURES[0], meter_value: '1', meter_type_code: 'delta' })
      fetch(url, { method: 'POST', headers, body })
        .then(async response => {
          await response.arrayBuffer()
          if (response.ok) posts.ok++
          else posts.failed++
        })
        .catch(() => { posts.failed++ })
    }
    done()
  })
}

async function main (): Promise<void> {
  const { variant, kinde } = childConfig<ServerConfig>()
  // Every variant loads the same code in the same order and differs only in what it registers.
  // What a process happened to load was enough to tip V8 into a slow path for the object that
  // process.nextTick allocates (15% of a hello-world server's CPU instead of 1%, seen in
  // --cpu-prof): more than the differences measured here, and unrelated to them.
  const { kindeMetering } = await loadPackage()
  const app = Fastify({ logger: false })
  const posts = { started: 0, ok: 0, failed: 0, unanswered: 0 }
  if (variant === 'hook') {
    app.addHook('onResponse', (_request, _reply, done) => { done() })
  } else if (variant === 'metering') {
    await app.register(kindeMetering, {
      domain: kinde.url,
      clientId: kinde.clientId,
      clientSecret: kinde.clientSecret,
      customer: request => {
        const id = customerId(request.headers)
        return id === undefined ? undefined : { agreementId: id }
      },
      // 100,000 customers × 2 features; the default flush interval (60 s) outlasts the run.
      maxPendingKeys: 1_000_000
    })
  } else if (variant === 'rate-limit') {
    await app.register(rateLimit, { max: 1_000_000_000, timeWindow: 60_000, keyGenerator: request => customerId(request.headers) ?? request.ip })
  } else if (variant === 'naive') {
    await naiveMetering(app, kinde, posts)
  }
  app.get('/', { config: { meter: [FEATURES[0], { feature: FEATURES[1], value: 'durationMs' }] } }, async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  answer('stats', () => {
    const stats: ServerStats = { rss: process.memoryUsage().rss }
    if (variant === 'metering') {
      const metering = app.metering.stats()
      stats.pendingPairs = metering.pending.keys
      stats.lost = Object.values(metering.refused).reduce((sum, count) => sum + count, 0) + metering.dropped.overflow.records
    }
    if (variant === 'naive') stats.posts = { ...posts, unanswered: posts.started - posts.ok - posts.failed }
    return stats
  })
  tell({ type: 'ready', port: (app.server.address() as { port: number }).port })
}

void main()
