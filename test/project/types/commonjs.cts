/**
 * A CommonJS TypeScript consumer: under NodeNext this file is CommonJS, so `kinde-metering`
 * resolves through the `require` condition to dist/cjs and its declarations. Checked, never run.
 */
import Fastify = require('fastify')
import metering = require('kinde-metering')
import testing = require('kinde-metering/testing')

const app = Fastify.fastify()
void app.register(metering.kindeMetering, { customer: request => ({ userId: request.id }) })
void app.register(metering.default, { flushInterval: 1_000 })
app.get('/search', { config: { meter: 'searches' } }, async (_request, reply) => reply.meter('tokens', 1).send('ok'))
// @ts-expect-error a meter is a feature code, not a number
app.get('/wrong', { config: { meter: 1 } }, async () => 'ok')

const code: string = new metering.InvalidOptionError('domain', 'is required').code
const started: Promise<testing.KindeEmulator> = testing.startKindeEmulator()
export = { code, started }
