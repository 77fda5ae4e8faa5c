/**
 * Recording, in its own process (run with `--expose-gc`): heap bytes per pending (customer,
 * feature) pair, then `Metering.record()` calls per second over those pairs. The Metering points
 * at the emulator but never flushes during the measurement (flush interval of an hour).
 */
import { childConfig, tell, type Message } from './proc.js'
import { loadPackage } from './package.js'
import { agreementId, FEATURES } from './customers.js'

/** What the recording process is started with. */
export interface RecordingConfig {
  /** Pending pairs: `pairs / 2` customers × 2 features. */
  pairs: number
  /** Seconds of timed record() calls. */
  seconds: number
  kinde: { url: string, clientId: string, clientSecret: string }
}

/** What the recording process found. */
export interface RecordingResult extends Message {
  pairs: number
  /** Heap growth per pair, the customer id string included, bytes. */
  heapBytesPerPair: number
  opsPerSecond: number
  /** Pairs the Metering reported pending: must equal `pairs`. */
  pending: number
}

const gc = (globalThis as { gc?: () => void }).gc

function settledHeap (): number {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed
}

/** A fixed pseudo-random permutation of 0 … n-1, so hits spread over the maps as live traffic does. */
function shuffled (n: number): Uint32Array {
  const order = new Uint32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  let seed = 1
  for (let i = n - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    const j = seed % (i + 1)
    const swap = order[i]
    order[i] = order[j]
    order[j] = swap
  }
  return order
}

async function main (): Promise<void> {
  if (gc === undefined) throw new Error('run with node --expose-gc')
  const { pairs, seconds, kinde } = childConfig<RecordingConfig>()
  const { Metering } = await loadPackage()
  const metering = new Metering({
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    flushInterval: 3_600_000,
    maxPendingPairs: 2 * pairs,
    logger: { debug () {}, info () {}, warn () {}, error () {} }
  })
  const customers = pairs / FEATURES.length

  // Ids are built as they are recorded, so the only thing holding them is the Metering, as with
  // ids read from request headers.
  const before = settledHeap()
  for (let i = 0; i < customers; i++) {
    const customer = { agreementId: agreementId(i) }
    for (const feature of FEATURES) metering.record(customer, feature, 1)
  }
  const heapBytesPerPair = (settledHeap() - before) / pairs

  const refs = Array.from({ length: customers }, (_, i) => ({ agreementId: agreementId(i) }))
  const order = shuffled(pairs)
  const batch = Math.max(pairs, 100_000)
  let ops = 0
  const start = process.hrtime.bigint()
  const end = start + BigInt(Math.round(seconds * 1e9))
  let now = start
  do {
    for (let n = 0; n < batch; n++) {
      const pair = order[n % pairs]
      metering.record(refs[pair >> 1], FEATURES[pair & 1], 1)
    }
    ops += batch
    now = process.hrtime.bigint()
  } while (now < end)
  const opsPerSecond = ops / (Number(now - start) / 1e9)
  tell({ type: 'result', pairs, heapBytesPerPair, opsPerSecond, pending: metering.stats().pending.pairs } satisfies RecordingResult)
  process.disconnect()
}

void main()
