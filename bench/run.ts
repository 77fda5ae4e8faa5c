/**
 * `npm run bench`: what metering costs a server, beside its peers, in one run.
 *
 * - Request overhead: one-route Fastify servers (bare, empty hook, kinde-metering, rate-limit,
 *   naive per-request POSTs) under autocannon, each in its own process, interleaved over rounds.
 * - Recording: `Metering.record()` calls per second and heap bytes per pending pair.
 * - Delivery: records per second to the emulator, and which side limited it.
 * - Kinde calls per 1,000,000 requests, aggregated against naive, from the aggregation model.
 * - The fleet and journal benchmarks, when `bench/fleet.ts` / `bench/journal.ts` exist.
 *
 * Prints a markdown report on stdout (progress on stderr) and writes everything as JSON to
 * `bench/results/`. Options: `--quick` (a smoke run of a few seconds), `--rounds N`,
 * `--seconds S` and `--warmup S` (per overhead measurement), `--from dist|lib` (where the measured
 * processes load kinde-metering from; default dist, lib with --quick), `--out DIR`,
 * `--only overhead,recording,delivery,calls,fleet,journal`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { benchCalls, type CallsRow } from './calls.js'
import type { DeliveryConfig, DeliveryResult } from './delivery.js'
import type { EmulatorStats } from './emulator.js'
import { benchOverhead, CASES, type OverheadRow, type OverheadSample } from './overhead.js'
import { cpuMicros, PINNED, ROOT, startChild, type Child, type PackageSource } from './proc.js'
import type { RecordingConfig, RecordingResult } from './recording.js'
import { spread, type Spread } from './stats.js'
import { genericTable, num, range, table } from './table.js'

const SECTIONS = ['overhead', 'recording', 'delivery', 'calls', 'fleet', 'journal'] as const
type Section = typeof SECTIONS[number]

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    warmup: { type: 'string' },
    from: { type: 'string' },
    out: { type: 'string' },
    only: { type: 'string' }
  }
})
const quick = args.quick === true
const from: PackageSource = (args.from ?? (quick ? 'lib' : 'dist')) as PackageSource
if (from !== 'dist' && from !== 'lib') throw new Error('--from must be dist or lib')
if (from === 'dist' && !existsSync(join(ROOT, 'dist/esm/index.js'))) throw new Error('dist/esm is missing: run `npm run bench` (it builds first), or pass --from lib')
const only = new Set<Section>(args.only === undefined ? SECTIONS : args.only.split(',') as Section[])
const plan = {
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  warmupSeconds: Number(args.warmup ?? (quick ? 0.1 : 3)),
  seconds: Number(args.seconds ?? (quick ? 0.3 : 10)),
  connections: 50,
  recordingPairs: quick ? [1_000, 10_000] : [1_000, 1_000_000],
  recordingSeconds: quick ? 0.05 : 2,
  deliveryPairs: quick ? 1_000 : 100_000
}
const outDir = args.out ?? join(ROOT, 'bench/results')

const progress = (line: string): void => { process.stderr.write(`${line}\n`) }

/** The machine the figures come from, and how busy it was. */
function machine (): Record<string, unknown> {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : ''
  return {
    cpus: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    pinned: PINNED,
    from
  }
}

type Kinde = { url: string, clientId: string, clientSecret: string }

async function benchRecording (kinde: Kinde): Promise<Array<{ pairs: number, opsPerSecond: Spread, heapBytesPerPair: Spread }>> {
  const results: RecordingResult[] = []
  for (let round = 0; round < plan.rounds; round++) {
    for (const pairs of plan.recordingPairs) {
      const config: RecordingConfig = { pairs, seconds: plan.recordingSeconds, kinde }
      const child = startChild('recording.ts', config, { core: 0, from, nodeArgs: ['--expose-gc', '--max-old-space-size=4096'] })
      try {
        const result = await child.next<RecordingResult>('result')
        if (result.pending !== pairs) throw new Error(`recording: ${result.pending} pairs pending, expected ${pairs}`)
        results.push(result)
        progress(`recording ${num(pairs)} pairs: ${num(result.opsPerSecond)} ops/s, ${num(result.heapBytesPerPair, 1)} B/pair`)
      } finally {
        await child.kill()
      }
    }
  }
  return plan.recordingPairs.map(pairs => {
    const mine = results.filter(result => result.pairs === pairs)
    return { pairs, opsPerSecond: spread(mine.map(r => r.opsPerSecond)), heapBytesPerPair: spread(mine.map(r => r.heapBytesPerPair)) }
  })
}

interface DeliveryRow {
  pairs: number
  concurrency: number
  recordsPerSecond: Spread
  clientMicrosPerRecord: Spread
  emulatorMicrosPerRecord: Spread
  clientCpuShare: Spread
  emulatorCpuShare: Spread
}

async function benchDelivery (kinde: Kinde, emulator: Child): Promise<DeliveryRow> {
  const samples: Array<DeliveryResult & { emulatorCpuMicros: number }> = []
  for (let round = 0; round < plan.rounds; round++) {
    await emulator.ask({ type: 'reset' })
    const config: DeliveryConfig = { pairs: plan.deliveryPairs, kinde }
    const child = startChild('delivery.ts', config, { core: 0, from })
    try {
      await child.next('recorded')
      const before = cpuMicros(emulator.pid)
      child.send({ type: 'go' })
      const result = await child.next<DeliveryResult>('result')
      const emulatorCpuMicros = cpuMicros(emulator.pid) - before
      const { applied } = await emulator.ask<EmulatorStats>({ type: 'stats' })
      if (result.sent !== plan.deliveryPairs || applied < plan.deliveryPairs) {
        throw new Error(`delivery: sent ${result.sent}, emulator applied ${applied}, expected ${plan.deliveryPairs}`)
      }
      samples.push({ ...result, emulatorCpuMicros })
      progress(`delivery ${num(plan.deliveryPairs)} pairs: ${num(result.sent / result.seconds)} records/s`)
    } finally {
      await child.kill()
    }
  }
  return {
    pairs: plan.deliveryPairs,
    concurrency: samples[0].concurrency,
    recordsPerSecond: spread(samples.map(s => s.sent / s.seconds)),
    clientMicrosPerRecord: spread(samples.map(s => s.clientCpuMicros / s.sent)),
    emulatorMicrosPerRecord: spread(samples.map(s => s.emulatorCpuMicros / s.sent)),
    clientCpuShare: spread(samples.map(s => s.clientCpuMicros / (s.seconds * 1e6))),
    emulatorCpuShare: spread(samples.map(s => s.emulatorCpuMicros / (s.seconds * 1e6)))
  }
}

/** Runs another engineer's benchmark module when it exists: `bench/<name>.ts` exporting `bench<Name>({ quick })`. */
async function benchOther (name: 'fleet' | 'journal'): Promise<{ rows?: Array<Record<string, unknown>>, missing?: true, error?: string }> {
  const file = join(ROOT, `bench/${name}.ts`)
  if (!existsSync(file)) return { missing: true }
  try {
    const module = await import(file) as Record<string, unknown>
    const fn = module[`bench${name[0].toUpperCase()}${name.slice(1)}`]
    if (typeof fn !== 'function') throw new Error(`bench/${name}.ts does not export bench${name[0].toUpperCase()}${name.slice(1)}`)
    const rows: unknown = await fn({ quick })
    if (!Array.isArray(rows)) throw new Error(`bench/${name}.ts returned ${typeof rows}, not rows`)
    return { rows }
  } catch (error) {
    return { error: (error as Error).stack ?? String(error) }
  }
}

function overheadTable (rows: OverheadRow[]): string {
  return table(
    ['server', 'req/s', '× bare', 'p99 ms', '× bare', 'server µs/req', '× bare', 'server core busy'],
    rows.map(row => [
      row.label,
      range(row.requestsPerSecond),
      range(row.throughputRatio, 2),
      range(row.p99Ms),
      range(row.p99Ratio, 2),
      range(row.serverCpuMicros, 1),
      range(row.cpuRatio, 2),
      `${range({ ...row.serverCpuShare, median: row.serverCpuShare.median * 100, min: row.serverCpuShare.min * 100, max: row.serverCpuShare.max * 100 })}%`
    ]))
}

function percent (s: Spread): Spread {
  return { ...s, median: s.median * 100, min: s.min * 100, max: s.max * 100 }
}

/** Each target of the issue, met or not, from this run's figures. */
function targets (overhead: { rows: OverheadRow[], samples: OverheadSample[] } | undefined,
  recording: Awaited<ReturnType<typeof benchRecording>> | undefined, delivery: DeliveryRow | undefined): Array<{ target: string, value: string, met: boolean }> {
  const out: Array<{ target: string, value: string, met: boolean }> = []
  if (overhead !== undefined) {
    const row = (name: string): OverheadRow | undefined => overhead.rows.find(r => r.case === name)
    const m1 = row('metering-1k')
    const m100 = row('metering-100k')
    const hook = row('hook')
    const peer = row('rate-limit')
    if (m1 !== undefined) out.push({ target: 'kinde-metering ≥ 0.88 of bare throughput, 1,000 customers', value: num(m1.throughputRatio.median, 2), met: m1.throughputRatio.median >= 0.88 })
    if (m100 !== undefined) out.push({ target: 'kinde-metering ≥ 0.85 of bare throughput, 100,000 customers', value: num(m100.throughputRatio.median, 2), met: m100.throughputRatio.median >= 0.85 })
    if (m1 !== undefined && hook !== undefined) {
      const rounds = [...new Set(overhead.samples.map(s => s.round))]
      const gap = spread(rounds.map(round => {
        const of = (name: string): OverheadSample => overhead.samples.find(s => s.round === round && s.case === name)!
        const bare = of('bare').requestsPerSecond
        return (of('hook').requestsPerSecond - of('metering-1k').requestsPerSecond) / bare
      }))
      out.push({ target: 'metering work within 2 points of an empty hook (1,000 customers)', value: `${num(gap.median * 100, 1)} points`, met: gap.median <= 0.02 })
    }
    if (m1 !== undefined && peer !== undefined) {
      out.push({ target: 'ahead of @fastify/rate-limit', value: `${num(m1.throughputRatio.median, 2)} vs ${num(peer.throughputRatio.median, 2)}`, met: m1.throughputRatio.median > peer.throughputRatio.median })
    }
  }
  if (recording !== undefined) {
    const small = recording[0]
    const large = recording[recording.length - 1]
    out.push({ target: `record() ≥ 5,000,000 ops/s at ${num(small.pairs)} pairs`, value: num(small.opsPerSecond.median), met: small.opsPerSecond.median >= 5e6 })
    out.push({ target: `≤ 200 heap bytes per pending pair at ${num(large.pairs)} pairs`, value: num(large.heapBytesPerPair.median, 1), met: large.heapBytesPerPair.median <= 200 })
  }
  if (delivery !== undefined) {
    out.push({
      target: 'delivery limited by the emulator, not the client',
      value: `emulator ${num(delivery.emulatorMicrosPerRecord.median, 1)} µs/record, ${num(delivery.emulatorCpuShare.median * 100)}% busy; client ${num(delivery.clientMicrosPerRecord.median, 1)} µs/record, ${num(delivery.clientCpuShare.median * 100)}% busy`,
      met: delivery.emulatorMicrosPerRecord.median > delivery.clientMicrosPerRecord.median
    })
  }
  return out
}

async function main (): Promise<void> {
  const started = Date.now()
  const load = { before: loadavg(), after: [] as number[] }
  const info = machine()
  progress(`kinde-metering bench${quick ? ' (quick smoke run: timings mean nothing)' : ''}: ${info.cpus} CPUs, ${String(info.cpuModel)}, node ${process.version}, load ${load.before.map(l => l.toFixed(2)).join(' ')}`)
  const needsKinde = only.has('overhead') || only.has('recording') || only.has('delivery')
  const emulator = needsKinde ? startChild('emulator.ts', { agreements: quick ? 1_000 : 100_000 }, { core: 1, from }) : undefined
  const results: Record<string, unknown> = { machine: info, plan, quick }
  const report: string[] = []
  try {
    const kinde = emulator === undefined ? undefined : await emulator.next<Kinde & { type: string }>('ready')
    let overhead: { rows: OverheadRow[], samples: OverheadSample[] } | undefined
    let recording: Awaited<ReturnType<typeof benchRecording>> | undefined
    let delivery: DeliveryRow | undefined
    if (only.has('overhead')) {
      overhead = await benchOverhead({ ...plan, from, kinde: kinde! }, CASES, sample => {
        progress(`round ${sample.round + 1} ${sample.case}: ${num(sample.requestsPerSecond)} req/s, p99 ${sample.p99Ms} ms, ${num(sample.serverCpuMicros, 1)} µs/req, server ${num(sample.serverCpuShare * 100)}% / load ${num(sample.loadCpuShare * 100)}% of a core`)
      })
      results.overhead = overhead
      const naive = overhead.rows.find(row => row.case === 'naive')?.server.posts
      report.push(`### Request overhead\n\nautocannon, 1 worker, ${plan.connections} connections, loopback; ${plan.warmupSeconds} s warm-up then ${plan.seconds} s; ${plan.rounds} interleaved round(s); ` +
        `median (min–max); "× bare" is the ratio to bare Fastify in the same round. Route: \`GET /\` → \`{"hello":"world"}\`, metering two meters (\`searches\` +1, \`cpu_ms\` = durationMs), customer from the \`x-customer\` header.\n\n` +
        overheadTable(overhead.rows) +
        (naive === undefined ? '' : `\n\nNaive, last round: ${num(naive.started)} POSTs started, ${num(naive.ok)} answered, ${num(naive.unanswered)} still waiting when the run ended.`))
    }
    if (only.has('recording')) {
      recording = await benchRecording(kinde!)
      results.recording = recording
      report.push(`### Recording\n\n\`Metering.record()\` on pending pairs (customers × 2 features), no flush during the measurement; heap from \`process.memoryUsage().heapUsed\` after \`gc()\`, id strings included.\n\n` +
        table(['pending pairs', 'record() calls/s', 'heap bytes per pair'],
          recording.map(r => [num(r.pairs), range(r.opsPerSecond), range(r.heapBytesPerPair, 1)])))
    }
    if (only.has('delivery')) {
      delivery = await benchDelivery(kinde!, emulator!)
      results.delivery = delivery
      report.push(`### Delivery\n\nOne flush of ${num(delivery.pairs)} pending pairs to the emulator (its own process and core), default concurrency ${delivery.concurrency}.\n\n` +
        table(['records/s', 'client CPU µs/record', 'emulator CPU µs/record', 'client core busy', 'emulator core busy'],
          [[range(delivery.recordsPerSecond), range(delivery.clientMicrosPerRecord, 1), range(delivery.emulatorMicrosPerRecord, 1),
            `${range(percent(delivery.clientCpuShare))}%`, `${range(percent(delivery.emulatorCpuShare))}%`]]))
    }
    if (only.has('calls')) {
      const calls: CallsRow[] = benchCalls()
      results.calls = calls
      report.push('### Kinde calls per 1,000,000 requests\n\nTwo meters per route, flush every 60 s, customers equally likely: ' +
        'kinde-metering sends one record per distinct (customer, feature) per interval, C·(1 − (1 − 1/C)^(R·T)) customers × 2 meters; the naive approach one per request and meter.\n\n' +
        table(['req/s', 'customers', 'naive calls', 'kinde-metering calls', 'kinde-metering calls/s'],
          calls.map(row => [num(row.requestsPerSecond), num(row.customers), num(row.naive), num(row.aggregated), num(row.aggregatedPerSecond, 1)])))
    }
    for (const name of ['fleet', 'journal'] as const) {
      if (!only.has(name)) continue
      const other = await benchOther(name)
      results[name] = other
      if (other.missing === true) report.push(`### ${name}\n\n(bench/${name}.ts not present: skipped)`)
      else if (other.error !== undefined) report.push(`### ${name}\n\nfailed: ${other.error.split('\n')[0]}`)
      else report.push(`### ${name}\n\n${genericTable(other.rows!)}`)
      if (other.error !== undefined) process.exitCode = 1
    }
    const met = targets(overhead, recording, delivery)
    results.targets = met
    if (met.length > 0) report.push(`### Targets\n\n${table(['target', 'this run', 'met'], met.map(t => [t.target, t.value, t.met ? 'yes' : 'no']))}`)
  } finally {
    await emulator?.kill()
  }
  load.after = loadavg()
  results.load = load
  results.seconds = (Date.now() - started) / 1000
  report.unshift(`## Benchmarks${quick ? ' (quick smoke run: timings mean nothing)' : ''}\n\n` +
    `${String(info.cpus)} × ${String(info.cpuModel)}, Node ${process.version}, ${PINNED ? 'server pinned to core 0, load generator and emulator to core 1' : 'not pinned'}; ` +
    `load average ${load.before[0].toFixed(2)} before, ${load.after[0].toFixed(2)} after; kinde-metering from ${from === 'dist' ? 'dist/ (the build)' : 'lib/ (sources)'}; ${num(results.seconds as number)} s.`)
  const markdown = report.join('\n\n')
  results.markdown = markdown
  process.stdout.write(`${markdown}\n`)
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, `bench-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  progress(`results: ${file}`)
}

await main()
