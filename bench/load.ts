/**
 * The load generator: autocannon, one worker, in its own process. Warms the server up, waits for
 * the harness to note the server's CPU time, then runs the measured window. Every request names
 * the next of `customers` agreements in turn, so a run touches each of them.
 *
 * The requests are built once, one per customer, and each connection hands out the next in turn.
 * autocannon's own way to vary a header per request (`setupRequest`) rebuilds every request in
 * JavaScript, which costs the load generator about what the bare server spends answering it: the
 * load generator, not the server, then sets the pace, and every ratio reads about 1.
 */
import autocannon, { type Client } from 'autocannon'
import { childConfig, tell, type Message } from './proc.js'
import { agreementId, CUSTOMER_HEADER } from './customers.js'

/** What the load process is started with. */
export interface LoadConfig {
  customers: number
  connections: number
  warmupSeconds: number
  seconds: number
}

/** A measured window, as autocannon saw it. */
export interface LoadResult extends Message {
  /** Responses received. */
  requests: number
  /** Responses received during the warm-up. */
  warmupRequests: number
  /** Seconds the window lasted. */
  seconds: number
  /** Latency percentiles, ms. */
  p50: number
  p99: number
  /** Connection errors, timeouts and non-2xx answers: all should be 0. */
  errors: number
  /** CPU µs the load generator used in the window: near `seconds` × 1e6 means it, not the server, was the limit. */
  loadCpuMicros: number
}

/** Resolves with the next message from the harness. */
function nextMessage (): Promise<Message> {
  return new Promise(resolve => process.once('message', resolve))
}

async function main (): Promise<void> {
  const config = childConfig<LoadConfig>()
  // Started alongside the server; the harness sends its port once it listens.
  const { port } = await nextMessage() as Message & { port: number }
  const requests = Array.from({ length: config.customers }, (_, i) => Buffer.from(
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n${CUSTOMER_HEADER}: ${agreementId(i)}\r\n\r\n`))
  let next = 0
  const options = {
    url: `http://127.0.0.1:${port}`,
    connections: config.connections,
    setupClient: (client: Client) => {
      client.getRequestBuffer = () => requests[next++ % requests.length]
    }
  }
  const warmup = await autocannon({ ...options, duration: config.warmupSeconds })
  tell({ type: 'warm' })
  await nextMessage()
  const cpu = process.cpuUsage()
  const result = await autocannon({ ...options, duration: config.seconds })
  const used = process.cpuUsage(cpu)
  tell({
    type: 'result',
    requests: result.requests.total,
    warmupRequests: warmup.requests.total,
    seconds: result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    loadCpuMicros: used.user + used.system
  } satisfies LoadResult)
  process.disconnect()
}

void main()
