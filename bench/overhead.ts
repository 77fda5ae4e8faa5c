/**
 * Request overhead: each server variant in its own process on core 0, autocannon on core 1, the
 * variants interleaved round by round so that drift on a shared machine spreads over all of them;
 * each variant's figures are taken as ratios to the bare server of its framework in the same round.
 */
import { cpuMicros, startChild, type Child, type PackageSource } from './proc.js'
import type { LoadConfig, LoadResult } from './load.js'
import { serverScript, type ServerConfig, type ServerStats, type Variant } from './variants.js'
import { spread, type Spread } from './stats.js'

/** One row of the request-overhead table. */
export interface OverheadCase {
  name: string
  /** What the row shows, for the table. */
  label: string
  server: Variant
  /** Distinct customers the load cycles through. */
  customers: number
  /** The case this one's ratios are to: the bare server of its framework. */
  baseline: string
}

export const CASES: OverheadCase[] = [
  { name: 'bare', label: 'bare Fastify (`logger: false`), nothing else loaded', server: 'bare', customers: 1_000, baseline: 'bare' },
  { name: 'hook', label: '+ empty `onResponse` hook', server: 'hook', customers: 1_000, baseline: 'bare' },
  { name: 'unmetered', label: '+ kinde-metering registered, route unmetered', server: 'unmetered', customers: 1_000, baseline: 'bare' },
  { name: 'count-1k', label: '+ kinde-metering, one count, 1,000 customers', server: 'metered-count', customers: 1_000, baseline: 'bare' },
  { name: 'metering-1k', label: '+ kinde-metering, count + `responseBytes`, 1,000 customers', server: 'metered', customers: 1_000, baseline: 'bare' },
  { name: 'metering-100k', label: '+ kinde-metering, count + `responseBytes`, 100,000 customers', server: 'metered', customers: 100_000, baseline: 'bare' },
  { name: 'rate-limit', label: '+ `@fastify/rate-limit`, 1,000 keys', server: 'rate-limit', customers: 1_000, baseline: 'bare' },
  { name: 'naive', label: 'naive: one `meter_usage` POST per request', server: 'naive', customers: 1_000, baseline: 'bare' },
  { name: 'express-bare', label: 'bare Express, nothing else loaded', server: 'express-bare', customers: 1_000, baseline: 'express-bare' },
  { name: 'express-trivial', label: 'Express + one trivial `app.use`', server: 'express-trivial', customers: 1_000, baseline: 'express-bare' },
  { name: 'express-finish', label: 'Express + one `app.use` adding a `finish` listener', server: 'express-finish', customers: 1_000, baseline: 'express-bare' },
  { name: 'express-unmetered', label: 'Express + `app.use(kindeMetering(...))`, route unmetered', server: 'express-unmetered', customers: 1_000, baseline: 'express-bare' },
  { name: 'express-metered', label: 'Express + kinde-metering, count + `responseBytes`, 1,000 customers', server: 'express-metered', customers: 1_000, baseline: 'express-bare' }
]

/** How long and how hard to load each server. */
export interface OverheadPlan {
  rounds: number
  warmupSeconds: number
  seconds: number
  connections: number
  from: PackageSource
  kinde: ServerConfig['kinde']
}

/** One variant in one round. */
export interface OverheadSample {
  case: string
  round: number
  requestsPerSecond: number
  p99Ms: number
  /** Server CPU per response, µs (user + system over the window, from /proc). */
  serverCpuMicros: number
  /** Share of a core the server used over the window. */
  serverCpuShare: number
  /** Share of a core the load generator used over the window. */
  loadCpuShare: number
  requests: number
  /** Requests served in the warm-up and the window together: what the server's pending usage covers. */
  servedRequests: number
  errors: number
  server: ServerStats
}

/** A variant's figures over all rounds; ratios are to its baseline in the same round. */
export interface OverheadRow {
  case: string
  label: string
  customers: number
  /** The case the ratios are to. */
  baseline: string
  requestsPerSecond: Spread
  p99Ms: Spread
  serverCpuMicros: Spread
  throughputRatio: Spread
  p99Ratio: Spread
  cpuRatio: Spread
  /** Server CPU µs per request over the baseline's, same round. */
  extraCpuMicros: Spread
  serverCpuShare: Spread
  loadCpuShare: Spread
  errors: number
  /** Server-side counts of the last round (pending pairs, naive POST backlog). */
  server: ServerStats
  /** Requests the last round's server served, warm-up included. */
  servedRequests: number
}

async function measure (entry: OverheadCase, round: number, plan: OverheadPlan): Promise<OverheadSample> {
  const children: Child[] = []
  try {
    const serverConfig: ServerConfig = { variant: entry.server, kinde: plan.kinde }
    const loadConfig: LoadConfig = {
      customers: entry.customers, connections: plan.connections, warmupSeconds: plan.warmupSeconds, seconds: plan.seconds
    }
    const server = startChild(serverScript(entry.server), serverConfig, { core: 0, from: plan.from })
    children.push(server)
    const load = startChild('load.ts', loadConfig, { core: 1, from: plan.from })
    children.push(load)
    const { port } = await server.next<{ type: string, port: number }>('ready')
    load.send({ type: 'start', port })
    await load.next('warm')
    const before = cpuMicros(server.pid)
    load.send({ type: 'go' })
    const result = await load.next<LoadResult>('result')
    const used = cpuMicros(server.pid) - before
    const stats = await server.ask<ServerStats & { type: string }>({ type: 'stats' })
    const { type: _type, ...server_ } = stats
    return {
      case: entry.name,
      round,
      requestsPerSecond: result.requests / result.seconds,
      p99Ms: result.p99,
      serverCpuMicros: used / result.requests,
      serverCpuShare: used / (result.seconds * 1e6),
      loadCpuShare: result.loadCpuMicros / (result.seconds * 1e6),
      requests: result.requests,
      servedRequests: result.warmupRequests + result.requests,
      errors: result.errors,
      server: server_
    }
  } finally {
    await Promise.all(children.map(child => child.kill()))
  }
}

/**
 * Runs every case once per round, rotating the order each round.
 * @param progress called after each measurement, for the console.
 */
export async function benchOverhead (plan: OverheadPlan, cases: OverheadCase[] = CASES,
  progress: (sample: OverheadSample) => void = () => {}): Promise<{ rows: OverheadRow[], samples: OverheadSample[] }> {
  const samples: OverheadSample[] = []
  for (let round = 0; round < plan.rounds; round++) {
    for (let i = 0; i < cases.length; i++) {
      const sample = await measure(cases[(i + round) % cases.length], round, plan)
      samples.push(sample)
      progress(sample)
    }
  }
  const rows = cases.map(entry => {
    const mine = samples.filter(s => s.case === entry.name)
    const baseOf = (round: number): OverheadSample => {
      const base = samples.find(s => s.round === round && s.case === entry.baseline)
      if (base === undefined) throw new Error(`overhead case ${entry.name}: its baseline ${entry.baseline} was not measured`)
      return base
    }
    const ratio = (pick: (s: OverheadSample) => number): Spread => spread(mine.map(s => pick(s) / pick(baseOf(s.round))))
    return {
      case: entry.name,
      label: entry.label,
      customers: entry.customers,
      baseline: entry.baseline,
      requestsPerSecond: spread(mine.map(s => s.requestsPerSecond)),
      p99Ms: spread(mine.map(s => s.p99Ms)),
      serverCpuMicros: spread(mine.map(s => s.serverCpuMicros)),
      throughputRatio: ratio(s => s.requestsPerSecond),
      p99Ratio: ratio(s => s.p99Ms),
      cpuRatio: ratio(s => s.serverCpuMicros),
      extraCpuMicros: spread(mine.map(s => s.serverCpuMicros - baseOf(s.round).serverCpuMicros)),
      serverCpuShare: spread(mine.map(s => s.serverCpuShare)),
      loadCpuShare: spread(mine.map(s => s.loadCpuShare)),
      errors: mine.reduce((sum, s) => sum + s.errors, 0),
      server: mine[mine.length - 1].server,
      servedRequests: mine[mine.length - 1].servedRequests
    }
  })
  return { rows, samples }
}
