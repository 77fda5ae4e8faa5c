import t from 'tap'
import { resolveConfig } from '../lib/core/options.js'

const credentials = { clientId: 'id', clientSecret: 'secret' }

t.test('a domain is accepted with or without its scheme, and reduced to its origin', async t => {
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials }).origin, 'https://acme.kinde.com')
  t.equal(resolveConfig({ domain: 'https://acme.kinde.com/', ...credentials }).origin, 'https://acme.kinde.com')
  t.equal(resolveConfig({ domain: 'http://127.0.0.1:4000', ...credentials }).origin, 'http://127.0.0.1:4000')
})

t.test('defaults, in the units the options document', async t => {
  const config = resolveConfig({ domain: 'acme.kinde.com', ...credentials })
  t.match(config, {
    flushInterval: 60_000,
    shutdownTimeout: 10_000,
    concurrency: 4,
    requestTimeout: 10_000,
    ambiguous: 'retry',
    maxPendingKeys: 100_000,
    maxRequestsPerSecond: undefined,
    retry: { attempts: 4, baseDelay: 200, maxDelay: 10_000 },
    agreementCacheTtl: 600_000,
    agreementCacheSize: 10_000
  })
  t.ok(config.countStatus(399) && !config.countStatus(400), 'route meters count statuses below 400')
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.retry))
})

t.test('an access token replaces client credentials', async t => {
  const config = resolveConfig({ domain: 'acme.kinde.com', accessToken: 'token' }, {})
  t.equal(config.credentials, undefined)
  t.equal(config.accessToken, 'token')
})
