/**
 * Delivery, in its own process: records `pairs` pending pairs, then times one flush of them to
 * the emulator at the default concurrency, with its own CPU time; the harness reads the
 * emulator's, to tell which side limited the rate.
 */
import { childConfig, tell, type Message } from './proc.js'
import { loadPackage } from './package.js'
import { agreementId, FEATURES } from './customers.js'

/** What the delivery process is started with. */
export interface DeliveryConfig {
  pairs: number
  kinde: { url: string, clientId: string, clientSecret: string }
}

/** One timed flush. */
export interface DeliveryResult extends Message {
  /** Records Kinde accepted: must equal the pairs recorded. */
  sent: number
  seconds: number
  /** CPU µs this process used during the flush. */
  clientCpuMicros: number
  concurrency: number
}

async function main (): Promise<void> {
  const { pairs, kinde } = childConfig<DeliveryConfig>()
  const { Metering } = await loadPackage()
  const metering = new Metering({
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    flushInterval: 3_600_000,
    maxPendingPairs: 2 * pairs,
    logger: { debug () {}, info () {}, warn () {}, error () {} }
  })
  const recordAll = (customers: number): void => {
    for (let i = 0; i < customers; i++) {
      for (const feature of FEATURES) metering.record({ agreementId: agreementId(i) }, feature, 1.5)
    }
  }
  // A first, small flush fetches the token, opens the connections and warms the code up.
  recordAll(Math.min(1_000, pairs / FEATURES.length))
  await metering.flush()
  recordAll(pairs / FEATURES.length)
  tell({ type: 'recorded' })
  await new Promise<void>(resolve => process.once('message', () => resolve()))
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  const outcome = await metering.flush()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  tell({
    type: 'result', sent: outcome.sent, seconds, clientCpuMicros: used.user + used.system, concurrency: metering.config.concurrency
  } satisfies DeliveryResult)
  process.disconnect()
}

void main()
