/**
 * One Fastify variant of the measured server (see `Variant`): a one-route app answering a small
 * JSON. Runs in its own process; the harness reads its CPU time. What a variant does not use, it
 * does not load: the bare server is Fastify alone.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { answer, childConfig, tell } from './proc.js'
import { FEATURES } from './customers.js'
import { loadPackage } from './package.js'
import { COUNT_METER, customerId, meteringOptions, serverStats, TWO_METERS, type ServerConfig, type ServerStats } from './variants.js'

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
  const app = Fastify({ logger: false })
  const posts = { started: 0, ok: 0, failed: 0, unanswered: 0 }
  const metered = variant === 'unmetered' || variant === 'metered-count' || variant === 'metered'
  if (variant === 'hook') {
    app.addHook('onResponse', (_request, _reply, done) => { done() })
  } else if (metered) {
    const { kindeMetering } = await loadPackage()
    await app.register(kindeMetering, meteringOptions(kinde))
  } else if (variant === 'rate-limit') {
    const { default: rateLimit } = await import('@fastify/rate-limit')
    await app.register(rateLimit, { max: 1_000_000_000, timeWindow: 60_000, keyGenerator: request => customerId(request.headers) ?? request.ip })
  } else if (variant === 'naive') {
    await naiveMetering(app, kinde, posts)
  }
  const meter = variant === 'metered-count' ? COUNT_METER : variant === 'metered' ? TWO_METERS : undefined
  app.get('/', meter === undefined ? {} : { config: { meter } }, async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  answer('stats', () => {
    const stats = serverStats(metered ? app.metering.stats() : undefined)
    if (variant === 'naive') stats.posts = { ...posts, unanswered: posts.started - posts.ok - posts.failed }
    return stats
  })
  tell({ type: 'ready', port: (app.server.address() as { port: number }).port })
}

void main()
