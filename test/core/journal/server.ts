/**
 * A metered Fastify server with a journal, for the crash tests: `GET /hit` meters one `searches`
 * for the agreement in header `x-agreement`; `PUT /seats/:value` sets its `seats`.
 *
 * Usage: `node --import tsx test/core/journal/server.ts '<config as JSON>'` (see {@link ServerConfig}).
 * Prints JSON lines: `{ "recovered" }` with what the journal took over from dead processes,
 * `{ "port" }` once listening, `{ "dropped", "reason" }` for usage reported through onDrop, and
 * `{ "closed" }` with its stats once SIGTERM closed it; then it exits.
 */
import Fastify from 'fastify'
import { kindeMetering } from '../../../lib/index.js'

/** What the server is started with. */
export interface ServerConfig {
  kinde: { url: string, clientId: string, clientSecret: string }
  dir: string
  ambiguous: 'retry' | 'drop'
  /** Milliseconds: the journal's batch interval. */
  syncInterval: number
  /** Milliseconds between flushes. */
  flushInterval: number
}

const print = (line: object): void => { process.stdout.write(`${JSON.stringify(line)}\n`) }

async function main (config: ServerConfig): Promise<void> {
  const app = Fastify()
  await app.register(kindeMetering, {
    domain: config.kinde.url,
    clientId: config.kinde.clientId,
    clientSecret: config.kinde.clientSecret,
    customer: request => ({ agreementId: String(request.headers['x-agreement']) }),
    flushInterval: config.flushInterval,
    concurrency: 2,
    ambiguous: config.ambiguous,
    retry: { baseDelay: 1, maxDelay: 5 },
    onDrop: (records, reason) => {
      print({ dropped: records.reduce((sum, record) => sum + Number(record.value), 0), reason })
    },
    journal: { dir: config.dir, syncInterval: config.syncInterval }
  })
  app.get('/hit', { config: { meter: 'searches' } }, async () => 'ok')
  app.put('/seats/:value', async request => {
    app.metering.set({ agreementId: String(request.headers['x-agreement']) }, 'seats', Number((request.params as { value: string }).value))
    return 'ok'
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  print({ recovered: app.metering.stats().journal!.recovered })
  print({ port: (app.server.address() as { port: number }).port })
  process.once('SIGTERM', () => {
    void app.close().then(() => {
      print({ closed: app.metering.stats() })
      process.exit(0)
    })
  })
}

// tap also loads this file as a test, without arguments: then it does nothing.
if (process.argv[2] !== undefined) await main(JSON.parse(process.argv[2]) as ServerConfig)
