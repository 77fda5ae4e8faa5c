/**
 * One instance of a metered API, in its own process, for the fleet tests and benchmark: Fastify
 * with the plugin from lib/, metering `GET /search` (one `searches` and 0.1 `llm_tokens` per
 * request, billed to the agreement in header `x-agreement`) and `PUT /seats/:value` (sets the
 * agreement's `seats`), on 127.0.0.1.
 *
 * Started by `instances.ts` with its configuration in env `KINDE_METERING_FLEET` and an IPC
 * channel; it answers `stats`, `flush` and `close` messages. Run any other way (tap runs every
 * file under test/), it does nothing.
 */
import type { InstanceConfig, InstanceReply, InstanceRequest } from './instances.js'

const raw = process.env.KINDE_METERING_FLEET
if (raw !== undefined && process.send !== undefined) await serve(JSON.parse(raw) as InstanceConfig)

async function serve (config: InstanceConfig): Promise<void> {
  const { default: Fastify } = await import('fastify')
  const { Redis } = await import('ioredis')
  const { kindeMetering } = await import('../../../lib/index.js')
  const { redisStore } = await import('../../../lib/redis.js')

  const client = config.redisPort === undefined ? undefined : new Redis({ host: '127.0.0.1', port: config.redisPort })
  client?.on('error', () => {})
  const store = client === undefined
    ? undefined
    : redisStore({ client, prefix: config.prefix, syncInterval: config.syncInterval, leaseTtl: config.leaseTtl })
  const app = Fastify({ logger: config.logLevel === undefined ? false : { level: config.logLevel } })
  await app.register(kindeMetering, {
    domain: config.kinde.url,
    clientId: config.kinde.clientId,
    clientSecret: config.kinde.clientSecret,
    customer: request => {
      const id = request.headers['x-agreement']
      return typeof id === 'string' ? { agreementId: id } : undefined
    },
    flushInterval: config.flushInterval,
    concurrency: config.concurrency,
    retry: { baseDelay: 5, maxDelay: 50 },
    store
  })
  let served = 0
  app.get('/search', { config: { meter: ['searches', { feature: 'llm_tokens', value: 0.1 }] } }, async () => {
    served++
    return { hits: [] }
  })
  // Seats: a level, set (not summed) for the agreement in header x-agreement.
  app.put('/seats/:value', async request => {
    const id = request.headers['x-agreement']
    return { set: app.metering.set({ agreementId: String(id) }, 'seats', Number((request.params as { value: string }).value)) }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address() as { port: number }

  const reply = (message: InstanceReply): void => { process.send!(message) }
  process.on('message', (request: InstanceRequest) => {
    void (async () => {
      if (request.type === 'stats') {
        reply({ type: 'reply', id: request.id, served, leader: store?.isLeader ?? false, stats: app.metering.stats() })
      } else if (request.type === 'flush') {
        reply({ type: 'reply', id: request.id, outcome: await app.metering.flush() })
      } else {
        await app.close()
        client?.disconnect()
        reply({ type: 'reply', id: request.id })
        process.disconnect()
      }
    })()
  })
  reply({ type: 'ready', port: address.port, pid: process.pid })
}
