/**
 * Journal benchmark: what option `journal` costs a metered server. The same one-route Fastify
 * server (kinde-metering, two meters, 1,000 customers, a flush every 5 s) runs without a journal,
 * with one, and with one that fsyncs every write; each variant in its own process pinned to core
 * 0, autocannon (bench/load.ts) and the emulator (bench/emulator.ts) on core 1, variants
 * interleaved round by round, medians over rounds. Ratios are to the variant without a journal in
 * the same round.
 *
 * Standalone: `npx tsx bench/journal.ts [--quick]`. From the harness: `benchJournal({ quick })`.
 * Started by the benchmark with a JSON configuration, this file is the measured server.
 */
import Fastify from 'fastify'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { CUSTOMER_HEADER, FEATURES } from './customers.js'
import type { LoadConfig, LoadResult } from './load.js'
import { loadPackage } from './package.js'
import { answer, childConfig, cpuMicros, ROOT, startChild, tell, type Child, type PackageSource } from './proc.js'
import { spread } from './stats.js'

/** One row of the journal table. */
export interface JournalRow {
  variant: string
  /** Median over rounds. */
  requestsPerSecond: number
  /** Throughput over the variant without a journal, same round; median. */
  ratio: number
  /** Latency, ms, 99th percentile; median over rounds. */
  p99Ms: number
  /** Server CPU per request, µs (user + system over the window); median over rounds. */
  serverCpuMicros: number
  /** Size of the journal file at the end of the last round, bytes. */
  journalBytes: number
}

interface Variant {
  name: string
  label: string
  journal: { fsync: boolean } | undefined
}

const VARIANTS: Variant[] = [
  { name: 'memory', label: 'kinde-metering, no journal', journal: undefined },
  { name: 'journal', label: '+ journal (a write every 100 ms)', journal: { fsync: false } },
  { name: 'journal-fsync', label: '+ journal, fsync on every write', journal: { fsync: true } }
]

const CUSTOMERS = 1_000
const CONNECTIONS = 50
const FLUSH_INTERVAL = 5_000 // 5 s

/** What the measured server is started with. */
interface ServerConfig {
  kinde: { url: string, clientId: string, clientSecret: string }
  /** Journal directory and fsync, or none. */
  journal: { dir: string, fsync: boolean } | undefined
}

interface Sample {
  variant: string
  round: number
  requestsPerSecond: number
  p99Ms: number
  serverCpuMicros: number
  journalBytes: number
}

/** Runs every variant once per round, rotating the order each round. */
export async function benchJournal (opts: { quick: boolean }): Promise<JournalRow[]> {
  const plan = opts.quick
    ? { rounds: 1, warmupSeconds: 0.2, seconds: 0.5 } // a smoke run, as the harness's
    : { rounds: 3, warmupSeconds: 3, seconds: 10 }
  // As the harness: the sources for a smoke run, else the build when there is one.
  const from: PackageSource = !opts.quick && existsSync(join(ROOT, 'dist/esm/index.js')) ? 'dist' : 'lib'
  const emulator = startChild('emulator.ts', { agreements: CUSTOMERS }, { core: 1, from })
  const samples: Sample[] = []
  try {
    const kinde = await emulator.next<ServerConfig['kinde'] & { type: string }>('ready')
    for (let round = 0; round < plan.rounds; round++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const variant = VARIANTS[(i + round) % VARIANTS.length]
        samples.push(await measure(variant, round, { ...plan, from, kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret } }))
      }
    }
  } finally {
    await emulator.kill()
  }
  const baseline = (round: number): Sample => samples.find(sample => sample.round === round && sample.variant === VARIANTS[0].name)!
  return VARIANTS.map(variant => {
    const mine = samples.filter(sample => sample.variant === variant.name)
    return {
      variant: variant.label,
      requestsPerSecond: Math.round(spread(mine.map(sample => sample.requestsPerSecond)).median),
      ratio: spread(mine.map(sample => sample.requestsPerSecond / baseline(sample.round).requestsPerSecond)).median,
      p99Ms: spread(mine.map(sample => sample.p99Ms)).median,
      serverCpuMicros: spread(mine.map(sample => sample.serverCpuMicros)).median,
      journalBytes: mine[mine.length - 1].journalBytes
    }
  })
}

async function measure (variant: Variant, round: number,
  plan: { warmupSeconds: number, seconds: number, from: PackageSource, kinde: ServerConfig['kinde'] }): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), 'kinde-metering-journal-bench-'))
  const children: Child[] = []
  try {
    const config: ServerConfig = { kinde: plan.kinde, journal: variant.journal && { dir, fsync: variant.journal.fsync } }
    const server = startChild('journal.ts', config, { core: 0, from: plan.from })
    children.push(server)
    const loadConfig: LoadConfig = { customers: CUSTOMERS, connections: CONNECTIONS, warmupSeconds: plan.warmupSeconds, seconds: plan.seconds }
    const load = startChild('load.ts', loadConfig, { core: 1, from: plan.from })
    children.push(load)
    const { port } = await server.next<{ type: string, port: number }>('ready')
    load.send({ type: 'start', port })
    await load.next('warm')
    const before = cpuMicros(server.pid)
    load.send({ type: 'go' })
    const result = await load.next<LoadResult>('result')
    const used = cpuMicros(server.pid) - before
    const stats = await server.ask<{ type: string, journalBytes: number, lost: number }>({ type: 'stats' })
    if (result.errors > 0 || stats.lost > 0) throw new Error(`${variant.name}: ${result.errors} failed requests, ${stats.lost} usage lost`)
    return {
      variant: variant.name,
      round,
      requestsPerSecond: result.requests / result.seconds,
      p99Ms: result.p99,
      serverCpuMicros: used / result.requests,
      journalBytes: stats.journalBytes
    }
  } finally {
    await Promise.all(children.map(child => child.kill()))
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The measured server: meters both features of every request for the customer in the header. */
async function serve (): Promise<void> {
  const { kinde, journal } = childConfig<ServerConfig>()
  const { kindeMetering } = await loadPackage()
  const app = Fastify({ logger: false })
  await app.register(kindeMetering, {
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    customer: request => {
      const id = request.headers[CUSTOMER_HEADER]
      return typeof id === 'string' ? { agreementId: id } : undefined
    },
    flushInterval: FLUSH_INTERVAL,
    journal
  })
  app.get('/', { config: { meter: [FEATURES[0], { feature: FEATURES[1], value: 'durationMs' }] } }, async () => ({ hello: 'world' }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  answer('stats', () => {
    const stats = app.metering.stats()
    const lost = Object.values(stats.refused).reduce((sum, count) => sum + count, 0) + stats.dropped.overflow.records +
      (stats.journal?.writeErrors ?? 0)
    return { journalBytes: stats.journal?.bytes ?? 0, lost }
  })
  tell({ type: 'ready', port: (app.server.address() as { port: number }).port })
}

if (process.argv[2]?.startsWith('{') === true) {
  await serve()
} else if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchJournal({ quick: process.argv.includes('--quick') })
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`)
}
