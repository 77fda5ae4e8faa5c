/**
 * Fleet benchmark: three instances of a metered API under load, each with its own in-memory store
 * (every instance sends its own record per customer and feature) or sharing one Redis store (one
 * record per customer and feature for the whole fleet), and what Kinde receives.
 *
 * Each instance is a process (`test/redis/fleet/instance.ts`, the plugin from lib/ through tsx) metering
 * two features per request for 50 customers, flushing every second; autocannon drives all three at
 * once from this process (after a one-second unmetered warm-up), which also runs the Kinde
 * emulator. Kinde calls include the final flush at close. Throughput shares two cores with the
 * load generator and emulator: compare the variants, not the absolute figures.
 *
 * Standalone: `npx tsx bench/fleet.ts [--quick]`. From the harness: `benchFleet({ quick })`.
 */
import autocannon from 'autocannon'
import { pathToFileURL } from 'node:url'
import { startKindeEmulator } from '../lib/testing.js'
import { startFleet, type Instance } from '../test/redis/fleet/instances.js'
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.js'

/** One measured configuration. */
export interface FleetRow {
  variant: string
  /** meter_usage requests Kinde received during the run and the instances' close. */
  kindeCalls: number
  /** Requests served per second by the three instances together. */
  requestsPerSecond: number
}

const INSTANCES = 3
const CUSTOMERS = 50
const FLUSH_INTERVAL = 1000 // 1 s
const CONNECTIONS = 10 // per instance

/** Runs both variants, in-memory first. */
export async function benchFleet (opts: { quick: boolean }): Promise<FleetRow[]> {
  const seconds = opts.quick ? 2 : 10
  const rows: FleetRow[] = []
  for (const store of ['memory', 'redis'] as const) rows.push(await run(store, seconds))
  return rows
}

async function run (store: 'memory' | 'redis', seconds: number): Promise<FleetRow> {
  const kinde = await startKindeEmulator({
    agreements: Array.from({ length: CUSTOMERS }, (_, i) => ({ id: `agr_${i + 1}`, customerId: `cus_${i + 1}`, features: ['searches', 'llm_tokens'] }))
  })
  let redis: RedisServer | undefined
  let fleet: Instance[] = []
  try {
    if (store === 'redis') redis = await startRedisServer()
    fleet = await startFleet(INSTANCES, {
      kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
      redisPort: redis?.port,
      flushInterval: FLUSH_INTERVAL
    })
    // Warm-up without a customer header: nothing is metered, but the servers are compiled hot.
    await Promise.all(fleet.map(instance => autocannon({ url: `http://127.0.0.1:${instance.port}/search`, connections: CONNECTIONS, duration: 1 })))
    const results = await Promise.all(fleet.map(instance => autocannon({
      url: `http://127.0.0.1:${instance.port}/search`,
      connections: CONNECTIONS,
      duration: seconds,
      requests: [{
        setupRequest: request => ({ ...request, headers: { 'x-agreement': `agr_${1 + Math.floor(Math.random() * CUSTOMERS)}` } })
      }]
    })))
    await Promise.all(fleet.map(instance => instance.close()))
    const requests = results.reduce((sum, result) => sum + result.requests.total, 0)
    return {
      variant: `${INSTANCES} instances, ${store === 'memory' ? 'in-memory store each' : 'one Redis store'} (${CUSTOMERS} customers × 2 features, flush every ${FLUSH_INTERVAL / 1000} s, ${seconds} s)`,
      kindeCalls: kinde.calls.meter_usage,
      requestsPerSecond: Math.round(requests / seconds)
    }
  } finally {
    await Promise.all(fleet.map(instance => instance.kill()))
    await redis?.stop()
    await kinde.close()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchFleet({ quick: process.argv.includes('--quick') })
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`)
}
