// One Fastify variant for bench/instructions.sh: GET / answers { hello: 'world' }; GET /exit ends
// the process, so cachegrind's total covers exactly the requests served.
import Fastify from 'fastify'

const variant = process.argv[2]
const app = Fastify({ logger: false })
let meter
if (variant === 'hook') app.addHook('onResponse', (_request, _reply, done) => done())
else if (variant !== 'bare') {
  const { kindeMetering } = await import(process.env.KINDE_METERING_INDEX ?? new URL('../../dist/esm/index.js', import.meta.url).href)
  await app.register(kindeMetering, {
    domain: 'http://127.0.0.1:9', // never reached: a run under valgrind takes minutes, not an hour
    flushInterval: 3_600_000,
    clientId: 'bench',
    clientSecret: 'bench',
    logger: { debug () {}, info () {}, warn () {}, error () {}, child () { return this } },
    customer: request => ({ agreementId: request.headers['x-customer'] })
  })
  if (variant === 'count') meter = 'searches'
  if (variant === 'metered') meter = ['searches', { feature: 'egress_bytes', value: 'responseBytes' }]
}
app.get('/exit', async () => process.exit(0))
app.get('/', meter === undefined ? {} : { config: { meter } }, async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
process.stdout.write(`${app.server.address().port}\n`)
