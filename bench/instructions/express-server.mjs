// One Express variant for bench/instructions.sh: GET / answers res.json; GET /exit ends the
// process, so cachegrind's total covers exactly the requests served.
import express from 'express'

const variant = process.argv[2]
const app = express()
const route = []
if (variant === 'trivial') app.use((_req, _res, next) => next())
else if (variant === 'finish') {
  const onFinish = () => {}
  app.use((_req, res, next) => { res.on('finish', onFinish); next() })
} else if (variant !== 'bare') {
  const { kindeMetering, meter } = await import(process.env.KINDE_METERING_EXPRESS ?? new URL('../../dist/esm/express.js', import.meta.url).href)
  app.use(kindeMetering({
    domain: 'http://127.0.0.1:9', // never reached: a run under valgrind takes minutes, not an hour
    flushInterval: 3_600_000,
    clientId: 'bench',
    clientSecret: 'bench',
    logger: { debug () {}, info () {}, warn () {}, error () {} },
    customer: req => ({ agreementId: req.headers['x-customer'] })
  }))
  if (variant === 'count') route.push(meter('searches'))
  if (variant === 'metered') route.push(meter(['searches', { feature: 'egress_bytes', value: 'responseBytes' }]))
}
app.get('/exit', () => process.exit(0))
app.get('/', ...route, (_req, res) => { res.json({ hello: 'world' }) })
const server = app.listen(0, '127.0.0.1', () => { process.stdout.write(`${server.address().port}\n`) })
