/**
 * Type tests of the Fastify plugin, against the built declarations as users import them
 * (`kinde-metering`, resolved through the package's exports). Checked by test/project/types.test.ts with
 * `tsc --noEmit` under `moduleResolution` NodeNext and Bundler; never run. Each
 * `@ts-expect-error` line must fail to compile: a line that compiles fails the check.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import kindeMetering, { type FlushOutcome, type KindeMeteringOptions, type MeteringStats, type RouteMeter } from 'kinde-metering'
import { kindeMetering as named } from 'kinde-metering'

const app = Fastify()
const isExactly = <T>(value: T): T => value

// The default export is the named one.
isExactly<typeof named>(kindeMetering)

// Registration: every option is optional (the environment supplies the connection).
await app.register(kindeMetering)
await app.register(kindeMetering, {})
await app.register(kindeMetering, {
  domain: 'acme.kinde.com',
  clientId: 'id',
  clientSecret: 'secret',
  customer: request => {
    isExactly<FastifyRequest>(request)
    return { orgCode: String(request.headers['x-org']) }
  },
  flushInterval: 30_000,
  shutdownTimeout: 5_000,
  concurrency: 8,
  requestTimeout: 2_000,
  countStatus: status => status < 500,
  onDrop: (records, reason) => {
    isExactly<'rejected' | 'ambiguous' | 'no_agreement' | 'overflow' | 'shutdown'>(reason)
    for (const record of records) isExactly<string>(record.value)
  },
  ambiguous: 'drop',
  maxPendingPairs: 1_000,
  maxRequestsPerSecond: 20,
  retry: { attempts: 3, baseDelay: 100, maxDelay: 2_000 },
  agreementCacheTtl: 60_000,
  agreementCacheSize: 100,
  logger: app.log
})
// Each kind of customer, synchronously or not, or nobody.
await app.register(kindeMetering, { customer: () => ({ agreementId: 'agreement_1' }) })
await app.register(kindeMetering, { customer: () => ({ customerId: 'customer_1' }) })
await app.register(kindeMetering, { customer: async () => ({ userId: 'kp_1' }) })
await app.register(kindeMetering, { customer: () => undefined })
await app.register(kindeMetering, { accessToken: async () => 'token' })
// A Fastify register option next to the plugin's.
await app.register(kindeMetering, { prefix: '/v1', flushInterval: 1_000 })

// Wrong options do not compile.
// @ts-expect-error unknown option (a typo of flushInterval)
await app.register(kindeMetering, { domain: 'acme.kinde.com', flushIntervalMs: 1_000 })
// @ts-expect-error flushInterval is a number of milliseconds
await app.register(kindeMetering, { flushInterval: '60s' })
// @ts-expect-error ambiguous is 'retry' or 'drop'
await app.register(kindeMetering, { ambiguous: 'ignore' })
// @ts-expect-error retry.attempts is a number
await app.register(kindeMetering, { retry: { attempts: '3' } })
// @ts-expect-error a customer names one of agreementId, customerId, userId or orgCode
await app.register(kindeMetering, { customer: () => ({ organization: 'org_1' }) })
// @ts-expect-error identifiers are strings
await app.register(kindeMetering, { customer: () => ({ userId: 42 }) })
// @ts-expect-error countStatus takes a status code and answers a boolean
await app.register(kindeMetering, { countStatus: (status: string) => status === '200' })

// Options can be declared apart and keep their checks.
const options: KindeMeteringOptions = { customer: request => ({ userId: request.id }) }
await app.register(kindeMetering, options)
// @ts-expect-error unknown option
const misspelt: KindeMeteringOptions = { custommer: () => undefined }

// config.meter: every form a route can meter.
app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
app.get('/export', { config: { meter: { feature: 'egress_bytes', value: 'responseBytes' } } }, async () => 'ok')
app.post('/upload', { config: { meter: { feature: 'ingress_bytes', value: 'requestBytes' } } }, async () => 'ok')
app.get('/slow', { config: { meter: { feature: 'cpu_ms', value: 'durationMs' } } }, async () => 'ok')
app.get('/fixed', { config: { meter: { feature: 'credits', value: 2.5 } } }, async () => 'ok')
app.get('/computed', {
  config: {
    meter: {
      feature: 'rows',
      value: (request, reply) => {
        isExactly<FastifyRequest>(request)
        isExactly<FastifyReply>(reply)
        return Number(reply.getHeader('x-rows'))
      }
    }
  }
}, async () => 'ok')
app.get('/several', { config: { meter: ['renders', { feature: 'cpu_ms', value: 'durationMs' }] } }, async () => 'ok')
app.route({ method: 'GET', url: '/route', config: { meter: 'searches' }, handler: async () => 'ok' })
const declared: RouteMeter = [{ feature: 'a' }, 'b']
app.get('/declared', { config: { meter: declared } }, async () => 'ok')

// Wrong meter forms do not compile.
// @ts-expect-error a meter is a feature code, not a number
app.get('/e1', { config: { meter: 1 } }, async () => 'ok')
// @ts-expect-error { value } needs its feature
app.get('/e2', { config: { meter: { value: 1 } } }, async () => 'ok')
// @ts-expect-error no such built-in value
app.get('/e3', { config: { meter: { feature: 'egress', value: 'bytes' } } }, async () => 'ok')
// @ts-expect-error a value function returns a number
app.get('/e4', { config: { meter: { feature: 'rows', value: () => '12' } } }, async () => 'ok')
// @ts-expect-error the feature is `feature`
app.get('/e5', { config: { meter: { code: 'searches' } } }, async () => 'ok')
// @ts-expect-error a value is a number, a built-in name or a function, not a string of digits
app.get('/e6', { config: { meter: [{ feature: 'x', value: '1' }] } }, async () => 'ok')

// reply.meter: chainable, a feature and a number.
app.post('/complete', async (_request, reply) => {
  isExactly<FastifyReply>(reply.meter('input_tokens', 12).meter('output_tokens', 40))
  // @ts-expect-error the amount is required
  reply.meter('input_tokens')
  // @ts-expect-error the amount is a number
  reply.meter('input_tokens', '12')
  return 'ok'
})

// app.metering: the core.
isExactly<Promise<FlushOutcome>>(app.metering.flush())
isExactly<MeteringStats>(app.metering.stats())
isExactly<string>(app.metering.stats().pending.units)
isExactly<number>(app.metering.stats().dropped.shutdown.records)
isExactly<Promise<{ sent: number, dropped: number }>>(app.metering.close())
// @ts-expect-error stats are read, not awaited: no such field on a promise
isExactly<number>(app.metering.flush().sent)
// set(): a level for a customer and feature, synchronous; refusals counted in stats().refused.
isExactly<boolean>(app.metering.set({ orgCode: 'org_1' }, 'seats', 12))
isExactly<number>(app.metering.stats().refused.mixedKinds)
// @ts-expect-error the level is a number
app.metering.set({ orgCode: 'org_1' }, 'seats', '12')
// @ts-expect-error the customer is a reference, not a bare id
app.metering.set('org_1', 'seats', 12)

export { misspelt }
