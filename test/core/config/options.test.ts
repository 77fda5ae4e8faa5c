import t from 'tap'
import { InvalidOptionError } from '../../../lib/core/report/errors.js'
import { resolveConfig } from '../../../lib/core/config/options.js'
import { redisStore } from '../../../lib/redis.js'
import { MemoryStore } from '../../../lib/core/store/usage-store.js'

const credentials = { clientId: 'id', clientSecret: 'secret' }

t.test('a domain is accepted with or without its scheme, and reduced to its origin', async t => {
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials }).origin, 'https://acme.kinde.com')
  t.equal(resolveConfig({ domain: 'https://acme.kinde.com/', ...credentials }).origin, 'https://acme.kinde.com')
  t.equal(resolveConfig({ domain: 'http://127.0.0.1:4000', ...credentials }).origin, 'http://127.0.0.1:4000')
})

t.test('a domain with a path says what it got and what was meant; credentials in it are never echoed', async t => {
  t.throws(() => resolveConfig({ domain: 'https://acme.kinde.com/oauth2/token', ...credentials }), {
    option: 'domain',
    message: 'kinde-metering: option "domain" must be a bare domain without path, query or credentials, got "https://acme.kinde.com/oauth2/token"; did you mean "acme.kinde.com"?'
  })
  const error = t.throws(() => resolveConfig({ domain: 'https://me:hunter2@acme.kinde.com', ...credentials })) as Error
  t.match(error.message, /got a URL with credentials; did you mean "acme\.kinde\.com"\?/)
  t.notMatch(error.message, /hunter2/)
})

t.test('defaults, in the units the options document', async t => {
  const config = resolveConfig({ domain: 'acme.kinde.com', ...credentials })
  t.match(config, {
    flushInterval: 60_000,
    shutdownTimeout: 10_000,
    concurrency: 4,
    requestTimeout: 10_000,
    ambiguous: 'retry',
    maxPendingPairs: 100_000,
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

t.test('an unknown option key is refused, naming it and the closest known option', async t => {
  const domain = 'acme.kinde.com'
  const cases: Array<[object, string, RegExp]> = [
    [{ shutdownTimout: 5_000 }, 'shutdownTimout', /did you mean "shutdownTimeout"/],
    [{ flushIntervalMs: 1_000 }, 'flushIntervalMs', /did you mean "flushInterval"/],
    [{ concurency: 2 }, 'concurency', /did you mean "concurrency"/],
    [{ retry: { attempt: 2 } }, 'retry.attempt', /did you mean "retry.attempts"/],
    [{ journal: { dir: '/tmp/j', fsynk: true } }, 'journal.fsynk', /did you mean "journal.fsync"/],
    [{ webhookUrl: 'https://example.com' }, 'webhookUrl', /known options: domain, clientId, .*journal, deadLetter$/]
  ]
  for (const [extra, option, hint] of cases) {
    const error = t.throws(() => resolveConfig({ domain, ...credentials, ...extra }))
    t.type(error, InvalidOptionError)
    t.equal((error as InvalidOptionError).option, option)
    t.match((error as Error).message, hint)
  }
  t.doesNotThrow(() => resolveConfig({ domain, ...credentials, retry: { attempts: 2, baseDelay: 10, maxDelay: 20 }, journal: { dir: '/tmp/j', syncInterval: 50, fsync: true } }))
})

t.test('redisStore() refuses an unknown option key, naming it and the closest known one', async t => {
  const error = t.throws(() => redisStore({ client: {} as any, leaseTTL: 5_000 } as any))
  t.type(error, InvalidOptionError)
  t.equal((error as InvalidOptionError).option, 'leaseTTL')
  t.match((error as Error).message, /did you mean "leaseTtl"/)
})

t.test('an option renamed since an earlier version is refused, naming its new name', async t => {
  const error = t.throws(() => resolveConfig({ domain: 'acme.kinde.com', ...credentials, maxPendingKeys: 1_000 } as any))
  t.type(error, InvalidOptionError)
  t.equal((error as InvalidOptionError).option, 'maxPendingKeys')
  t.equal((error as Error).message, 'kinde-metering: option "maxPendingKeys" was renamed to "maxPendingPairs"')
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials, maxPendingPairs: 1_000 }).maxPendingPairs, 1_000)
})

t.test('a store that lacks a member of the protocol is refused at registration, naming what it lacks', async t => {
  const domain = 'acme.kinde.com'
  // A store written for the protocol before takes were named by id.
  const earlier = { add () {}, take: async () => undefined, putBack () {}, settle () {}, pending: () => ({ keys: 0 }), settledEntries () {} }
  const error = t.throws(() => resolveConfig({ domain, ...credentials, store: earlier as any }))
  t.type(error, InvalidOptionError)
  t.equal((error as InvalidOptionError).option, 'store')
  t.match((error as Error).message, /lacks attach\(\), delivered\(\), dropped\(\), close\(\), syncInterval \(a number of ms\), shared \(a boolean\): .*settledEntries\(\) became delivered\(\) and dropped\(\)/)
  t.throws(() => resolveConfig({ domain, ...credentials, store: 'redis' as any }), { option: 'store', message: /must be a UsageStore .*got string/ })
  // A store read from config that came back empty: refused with the option's name, not a TypeError.
  t.throws(() => resolveConfig({ domain, ...credentials, store: null as any }), { name: 'InvalidOptionError', option: 'store', message: /must be a UsageStore/ })
  t.doesNotThrow(() => resolveConfig({ domain, ...credentials, store: new MemoryStore() }))
})
