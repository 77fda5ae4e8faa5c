/**
 * `npm run bench`: what metering costs a server, beside its peers, in one run.
 *
 * - Request overhead: one-route Fastify servers (bare, empty hook, kinde-metering registered on an
 *   unmetered route, metered with one or two meters, rate-limit, naive per-request POSTs) and
 *   Express servers (bare, trivial middleware, a `finish` listener, kinde-metering unmetered and
 *   metered) under autocannon, each in its own process, interleaved over rounds.
 * - Recording: `Metering.record()` calls per second and heap bytes per pending pair.
 * - Delivery: records per second to the emulator, and which side limited it.
 * - Kinde calls per 1,000,000 requests, aggregated against naive, from the aggregation model.
 * - The fleet and journal benchmarks, when `bench/fleet.ts` / `bench/journal.ts` exist; the fleet
 *   one is reported as not run, with the reason, where no Redis can be had.
 *
 * Prints a markdown report on stdout (progress on stderr) and writes it, with every sample, as
 * JSON to `bench/results/`. Options: `--quick` (a smoke run of seconds), `--rounds N`,
 * `--seconds S` and `--warmup S` (per overhead measurement), `--from dist|lib` (where the measured
 * processes load kinde-metering from; default dist, lib with --quick), `--out DIR`,
 * `--only overhead,recording,delivery,calls,fleet,journal`, `--cases bare,hook,…` (only these
 * request-overhead rows, each with its framework's bare server, in the order of `CASES`).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { benchCalls } from './calls.js'
import { benchOverhead, CASES, type OverheadRow, type OverheadSample } from './overhead.js'
import { PINNED, ROOT, startChild, type PackageSource } from './proc.js'
import { callsBlock, deliveryBlock, headerBlock, otherBlock, overheadBlock, recordingBlock, targetsBlock, type MeasuredCalls } from './report.js'
import { benchDelivery, benchRecording, type DeliveryRow, type Kinde, type RecordingRow } from './sections.js'
import { num } from './table.js'
import { judgeTargets } from './targets.js'
import { redisUnavailable } from '../test/helpers/redis-server.js'

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
    only: { type: 'string' },
    cases: { type: 'string' }
  }
})
const quick = args.quick === true
const from = (args.from ?? (quick ? 'lib' : 'dist')) as PackageSource
if (from !== 'dist' && from !== 'lib') throw new Error('--from must be dist or lib')
if (from === 'dist' && !existsSync(join(ROOT, 'dist/esm/index.js'))) throw new Error('dist/esm is missing: run `npm run bench` (it builds first), or pass --from lib')
const only = new Set<string>(args.only?.split(',') ?? SECTIONS)
for (const section of only) if (!(SECTIONS as readonly string[]).includes(section)) throw new Error(`--only: unknown section ${section}; known: ${SECTIONS.join(', ')}`)
const cases = selectCases(args.cases)
const plan = {
  rounds: Number(args.rounds ?? (quick ? 1 : 3)),
  warmupSeconds: Number(args.warmup ?? (quick ? 0.1 : 3)),
  seconds: Number(args.seconds ?? (quick ? 0.5 : 10)), // a quick window long enough for the naive server to answer on a busy machine
  connections: 50,
  recordingPairs: quick ? [1_000, 10_000] : [1_000, 1_000_000],
  recordingSeconds: quick ? 0.05 : 2,
  deliveryPairs: quick ? 1_000 : 100_000
}
const outDir = args.out ?? join(ROOT, 'bench/results')

/** The overhead rows `--cases` names, each with the bare server its ratios are to; all without it. */
function selectCases (names: string | undefined): typeof CASES {
  if (names === undefined) return CASES
  const wanted = new Set(names.split(','))
  for (const name of wanted) {
    const entry = CASES.find(one => one.name === name)
    if (entry === undefined) throw new Error(`--cases: unknown case ${name}; known: ${CASES.map(one => one.name).join(', ')}`)
    wanted.add(entry.baseline)
  }
  return CASES.filter(entry => wanted.has(entry.name))
}

const progress = (line: string): void => { process.stderr.write(`${line}\n`) }

/** The machine the figures come from. */
function machine (): { cpus: number, cpuModel: string, node: string, platform: string, pinned: boolean, from: PackageSource } {
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

/** Runs another engineer's benchmark when its file exists: `bench/<name>.ts` exporting `bench<Name>({ quick })` → rows. */
async function benchOther (name: 'fleet' | 'journal'): Promise<{ rows?: Array<Record<string, unknown>>, missing?: true, error?: string }> {
  const file = join(ROOT, `bench/${name}.ts`)
  if (!existsSync(file)) return { missing: true }
  const exported = `bench${name[0].toUpperCase()}${name.slice(1)}`
  try {
    // Imported by path at run time, so the harness runs (and type-checks) without these files.
    const module = await import(file) as Record<string, unknown>
    const bench = module[exported]
    if (typeof bench !== 'function') throw new Error(`bench/${name}.ts does not export ${exported}`)
    const rows: unknown = await bench({ quick })
    if (!Array.isArray(rows)) throw new Error(`${exported} returned ${typeof rows}, not rows`)
    return { rows }
  } catch (error) {
    return { error: (error as Error).stack ?? String(error) }
  }
}

/** Times a section, for the JSON. */
async function timed<T> (seconds: Record<string, number>, name: string, section: () => Promise<T>): Promise<T> {
  const start = Date.now()
  try {
    return await section()
  } finally {
    seconds[name] = (Date.now() - start) / 1000
  }
}

async function main (): Promise<void> {
  const started = Date.now()
  const load = { before: loadavg(), after: [] as number[] }
  const info = machine()
  progress(`kinde-metering bench${quick ? ' (quick smoke run: timings mean nothing)' : ''}: ${info.cpus} CPUs, ${info.cpuModel}, node ${process.version}, load ${load.before.map(l => l.toFixed(2)).join(' ')}`)
  const sectionSeconds: Record<string, number> = {}
  const results: Record<string, unknown> = { machine: info, plan, quick, sectionSeconds }
  const blocks: string[] = []
  const needsKinde = only.has('overhead') || only.has('recording') || only.has('delivery')
  // Enough agreements for the naive server's customers and the delivered pairs.
  const emulator = needsKinde ? startChild('emulator.ts', { agreements: Math.max(1_000, plan.deliveryPairs / 2) }, { core: 1, from }) : undefined
  let overhead: { rows: OverheadRow[], samples: OverheadSample[] } | undefined
  let recording: RecordingRow[] | undefined
  let delivery: DeliveryRow | undefined
  try {
    const kinde = emulator === undefined ? undefined : await emulator.next<Kinde>('ready')
    if (only.has('overhead')) {
      overhead = await timed(sectionSeconds, 'overhead', async () => await benchOverhead({ ...plan, from, kinde: kinde! }, cases, sample => {
        progress(`round ${sample.round + 1} ${sample.case}: ${num(sample.requestsPerSecond)} req/s, p99 ${sample.p99Ms} ms, ${num(sample.serverCpuMicros, 1)} µs/request, ` +
          `server ${num(sample.serverCpuShare * 100)}% / load ${num(sample.loadCpuShare * 100)}% of a core`)
      }))
      results.overhead = overhead
      blocks.push(overheadBlock(overhead.rows, plan))
    }
    if (only.has('recording')) {
      recording = await timed(sectionSeconds, 'recording', async () =>
        await benchRecording(kinde!, { rounds: plan.rounds, pairs: plan.recordingPairs, seconds: plan.recordingSeconds, from }, progress))
      results.recording = recording
      blocks.push(recordingBlock(recording))
    }
    if (only.has('delivery')) {
      delivery = await timed(sectionSeconds, 'delivery', async () =>
        await benchDelivery(kinde!, emulator!, { rounds: plan.rounds, pairs: plan.deliveryPairs, from }, progress))
      results.delivery = delivery
      blocks.push(deliveryBlock(delivery))
    }
  } finally {
    await emulator?.kill()
  }
  if (only.has('calls')) {
    const calls = benchCalls()
    // The model counts two meters per request: the Fastify rows metering a count and responseBytes.
    const measured: MeasuredCalls[] = (overhead?.rows ?? []).filter(row => row.case.startsWith('metering-'))
      .map(row => ({ label: row.label.replace(/^\+ /, ''), customers: row.customers, served: row.servedRequests, pendingPairs: row.server.pendingPairs! }))
    results.calls = { rows: calls, measured }
    blocks.push(callsBlock(calls, measured))
  }
  for (const name of ['fleet', 'journal'] as const) {
    if (!only.has(name)) continue
    // The fleet needs a Redis, which `npm run bench` provides where it can (scripts/services.js).
    const noRedis = name === 'fleet' ? redisUnavailable() : undefined
    if (noRedis !== undefined) {
      results.fleet = { notRun: noRedis }
      blocks.push(`### fleet\n\nnot run: ${noRedis}`)
      continue
    }
    const other = await timed(sectionSeconds, name, async () => await benchOther(name))
    results[name] = other
    blocks.push(otherBlock(name, other))
    if (other.error !== undefined) process.exitCode = 1
  }
  const targets = judgeTargets(overhead, recording, delivery)
  results.targets = targets
  if (targets.length > 0) blocks.push(targetsBlock(targets, overhead?.rows))
  load.after = loadavg()
  results.load = load
  results.seconds = (Date.now() - started) / 1000
  blocks.unshift(headerBlock(info, load, results.seconds as number, quick))
  const markdown = blocks.join('\n\n')
  results.markdown = markdown
  process.stdout.write(`${markdown}\n`)
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, `bench-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  progress(`results: ${file}`)
}

await main()
