import { Redis } from 'ioredis'
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
    [{ webhookUrl: 'https://example.com' }, 'webhookUrl', /known options: domain, clientId, .*journal, deadLetter$/],
    [{ retryPolicy: {} }, 'retryPolicy', /did you mean "retry"\?$/],
    [{ shutdown: 5_000 }, 'shutdown', /did you mean "shutdownTimeout"\?$/],
    [{ client: 'id' }, 'client', /did you mean "clientId"\?$/],
    [{ domian: 'acme.kinde.com' }, 'domian', /did you mean "domain"\?$/],
    [{ maxRequestPerScnd: 5 }, 'maxRequestPerScnd', /did you mean "maxRequestsPerSecond"\?$/],
    // Two edits away, the last one at the key's end.
    [{ drop: () => {} }, 'drop', /did you mean "onDrop"\?$/]
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

t.test('redisStore() refuses a lease that is not a whole number of milliseconds, naming the option and its unit', async t => {
  // A client that never connects: the options are refused before the store touches it.
  const client = new Redis({ lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  t.throws(() => redisStore({ client, leaseTtl: 1500.5 }), new InvalidOptionError('leaseTtl', 'must be a whole number of milliseconds, got 1500.5'))
  t.throws(() => redisStore({ client, leaseTtl: 0 }), new InvalidOptionError('leaseTtl', 'must be a positive number of milliseconds, got 0'))
})

t.test('an option renamed since an earlier version is refused, naming its new name', async t => {
  const error = t.throws(() => resolveConfig({ domain: 'acme.kinde.com', ...credentials, maxPendingKeys: 1_000 } as any))
  t.type(error, InvalidOptionError)
  t.equal((error as InvalidOptionError).option, 'maxPendingKeys')
  t.equal((error as Error).message, 'kinde-metering: option "maxPendingKeys" was renamed to "maxPendingPairs"')
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials, maxPendingPairs: 1_000 }).maxPendingPairs, 1_000)
  // Renamed at the top level only: under retry it never existed, so no new name is offered there.
  t.throws(() => resolveConfig({ domain: 'acme.kinde.com', ...credentials, retry: { maxPendingKeys: 1_000 } } as any),
    { option: 'retry.maxPendingKeys', message: /is not an option of kinde-metering; known options: attempts, baseDelay, maxDelay$/ })
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

t.test('an invalid option is refused with what it must be and what it got', async t => {
  const domain = 'acme.kinde.com'
  const cases: Array<[object, string, string]> = [
    [{ flushInterval: 0 }, 'flushInterval', 'must be a positive number of milliseconds, got 0'],
    [{ shutdownTimeout: -5 }, 'shutdownTimeout', 'must be a positive number of milliseconds, got -5'],
    [{ requestTimeout: Infinity }, 'requestTimeout', 'must be a positive number of milliseconds, got null'],
    [{ agreementCacheTtl: '10m' }, 'agreementCacheTtl', 'must be a positive number of milliseconds, got "10m"'],
    [{ concurrency: 2.5 }, 'concurrency', 'must be a whole number, got 2.5'],
    [{ maxPendingPairs: 0 }, 'maxPendingPairs', 'must be a positive number, got 0'],
    [{ agreementCacheSize: 1.5 }, 'agreementCacheSize', 'must be a whole number, got 1.5'],
    [{ maxRequestsPerSecond: 0 }, 'maxRequestsPerSecond', 'must be a positive number, got 0'],
    [{ retry: { attempts: 1.5 } }, 'retry.attempts', 'must be a whole number, got 1.5'],
    [{ retry: { baseDelay: 0 } }, 'retry.baseDelay', 'must be a positive number of milliseconds, got 0'],
    [{ retry: { maxDelay: NaN } }, 'retry.maxDelay', 'must be a positive number of milliseconds, got null'],
    [{ retry: 'fast' }, 'retry', 'must be an object'],
    [{ customer: 'x-customer' }, 'customer', 'must be a function, got string'],
    [{ countStatus: 200 }, 'countStatus', 'must be a function, got number'],
    [{ onDrop: {} }, 'onDrop', 'must be a function, got object'],
    [{ ambiguous: 'never' }, 'ambiguous', "must be 'retry' or 'drop'"],
    [{ accessToken: '' }, 'accessToken', 'must be a non-empty string or a function returning one'],
    [{ domain: 'https://acme.kinde.com/?tenant=1' }, 'domain', 'must be a bare domain without path, query or credentials, got "https://acme.kinde.com/?tenant=1"; did you mean "acme.kinde.com"?'],
    [{ domain: 'https://' }, 'domain', 'is not a valid URL: "https://"'],
    [{ journal: 'dir' }, 'journal', 'must be an object such as { dir }'],
    [{ journal: null }, 'journal', 'must be an object such as { dir }'],
    [{ journal: { dir: 7 } }, 'journal.dir', 'must be a non-empty path'],
    [{ journal: { dir: '/tmp/j', fsync: 'yes' } }, 'journal.fsync', 'must be true or false'],
    [{ journal: { dir: '/tmp/j', syncInterval: 0 } }, 'journal.syncInterval', 'must be a positive number of milliseconds, got 0'],
    [{ deadLetter: null }, 'deadLetter', 'must be an object such as { dir }, or false'],
    [{ deadLetter: { dir: '/tmp/d', path: '/tmp/e' } }, 'deadLetter.path', 'is not an option of kinde-metering; known options: dir'],
    [{ deadLetter: { dir: 3 } }, 'deadLetter.dir', 'must be a non-empty path']
  ]
  for (const [extra, option, message] of cases) {
    t.throws(() => resolveConfig({ domain, ...credentials, ...extra } as any, {}), new InvalidOptionError(option, message), option)
  }
})

t.test('an option left out takes its environment variable, then its default; one given wins', async t => {
  const env = { KINDE_DOMAIN: 'env.kinde.com', KINDE_MANAGEMENT_CLIENT_ID: 'env-id', KINDE_MANAGEMENT_CLIENT_SECRET: 'env-secret' }
  t.match(resolveConfig({}, env), { origin: 'https://env.kinde.com', credentials: { clientId: 'env-id', clientSecret: 'env-secret' } })
  t.match(resolveConfig({ domain: 'HTTP://127.0.0.1:9', clientId: 'id', clientSecret: 'secret' }, env),
    { origin: 'http://127.0.0.1:9', credentials: { clientId: 'id', clientSecret: 'secret' } }, 'a scheme in capitals is kept, not doubled')
  t.throws(() => resolveConfig({ domain: 'acme.kinde.com', clientSecret: 'secret' }, {}),
    new InvalidOptionError('clientId', 'is required (or set KINDE_MANAGEMENT_CLIENT_ID, or pass accessToken)'))
  t.throws(() => resolveConfig({ domain: 'acme.kinde.com', clientId: 'id' }, {}),
    new InvalidOptionError('clientSecret', 'is required (or set KINDE_MANAGEMENT_CLIENT_SECRET, or pass accessToken)'))
  t.throws(() => resolveConfig({ ...credentials }, {}), new InvalidOptionError('domain', 'is required (or set KINDE_DOMAIN), e.g. "https://acme.kinde.com"'))
  t.throws(() => resolveConfig('acme.kinde.com' as any, {}), new InvalidOptionError('options', 'must be an object'))
  t.equal(resolveConfig({ domain: 'acme.kinde.com', accessToken: async () => 'token' }, {}).credentials, undefined, 'a token function needs no credentials either')
})

t.test('a retry.baseDelay above 10 s raises the default retry.maxDelay with it; the rest keep what was given', async t => {
  t.match(resolveConfig({ domain: 'acme.kinde.com', ...credentials, retry: { baseDelay: 30_000 } }, {}).retry, { baseDelay: 30_000, maxDelay: 30_000, attempts: 4 })
  const given = resolveConfig({
    domain: 'acme.kinde.com',
    ...credentials,
    maxRequestsPerSecond: 2.5,
    ambiguous: 'drop',
    retry: { attempts: 2, baseDelay: 50, maxDelay: 400 },
    journal: { dir: 'relative/journal' }
  }, {})
  t.match(given, { maxRequestsPerSecond: 2.5, ambiguous: 'drop', retry: { attempts: 2, baseDelay: 50, maxDelay: 400 } })
  t.match(given.journal, { dir: `${process.cwd()}/relative/journal`, syncInterval: 100, fsync: false }, 'the journal directory is made absolute, with its defaults')
  t.ok(Object.isFrozen(given.journal))
  t.equal(given.deadLetter?.dir, `${process.cwd()}/relative/journal/dead-letter`)
  const dead = resolveConfig({ domain: 'acme.kinde.com', ...credentials, deadLetter: { dir: 'dead' } }, {}).deadLetter
  t.equal(dead?.dir, `${process.cwd()}/dead`)
  t.ok(Object.isFrozen(dead))
})

t.test('ambiguous takes either policy by name', async t => {
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials, ambiguous: 'retry' }, {}).ambiguous, 'retry')
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials, ambiguous: 'drop' }, {}).ambiguous, 'drop')
})

t.test('a domain without a scheme gets https:// even when a URL appears later in it', async t => {
  t.throws(() => resolveConfig({ domain: 'acme.kinde.com/?next=https://example.com', ...credentials }, {}), new InvalidOptionError('domain',
    'must be a bare domain without path, query or credentials, got "acme.kinde.com/?next=https://example.com"; did you mean "acme.kinde.com"?'))
})

t.test('a journal beside a shared store is refused: the store already keeps pending usage outside the process', async t => {
  const client = new Redis({ lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  t.throws(() => resolveConfig({ domain: 'acme.kinde.com', ...credentials, store: redisStore({ client }), journal: { dir: '/tmp/j' } }, {}),
    new InvalidOptionError('journal', 'cannot be combined with a shared store: the store already keeps pending usage outside this process'))
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials, store: redisStore({ client }) }, {}).journal, undefined)
  t.equal(resolveConfig({ domain: 'acme.kinde.com', ...credentials, store: new MemoryStore(), journal: { dir: '/tmp/j' } }, {}).journal?.dir, '/tmp/j')
})
