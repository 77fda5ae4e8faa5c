import t from 'tap'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { plainEnv } from '../helpers/processes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

// The quick run starts a server and a load process per overhead row (13 rows, each through tsx):
// about a minute on a quiet machine, more than the suite's 120 s per file when it is busy.
t.setTimeout(360_000)

/** Runs `bench/run.ts` as `npm run bench -- --quick` does (on the sources, so no build is needed). */
function runBench (out: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  // The measured processes are not tests: they must not write coverage or load tap's hooks.
  const env = plainEnv()
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', out], { cwd: root, env })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return new Promise(resolve => child.on('close', code => resolve({ code, stdout, stderr })))
}

t.test('the quick bench runs every section, prints the markdown report and writes its JSON', async t => {
  const out = t.testdir()
  const { code, stdout, stderr } = await runBench(out)
  t.equal(code, 0, 'the bench exits 0', { stderr })

  for (const heading of ['## Benchmarks', '### Request overhead', '### Recording', '### Delivery', '### Kinde calls per 1,000,000 requests', '### Targets']) {
    t.match(stdout, heading)
  }
  for (const label of ['bare Fastify', 'empty `onResponse` hook', 'kinde-metering registered, route unmetered', 'kinde-metering, one count, 1,000 customers',
    'kinde-metering, count + `responseBytes`, 1,000 customers', 'kinde-metering, count + `responseBytes`, 100,000 customers', '`@fastify/rate-limit`', 'naive',
    'bare Express', 'Express + one trivial `app.use`', 'Express + one `app.use` adding a `finish` listener', 'Express + `app.use(kindeMetering(...))`, route unmetered',
    'Express + kinde-metering, count + `responseBytes`']) {
    t.match(stdout, new RegExp(`^\\| [^|]*${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^|]*\\| [\\d,]+`, 'm'), `a row for ${label}`)
  }
  t.notMatch(stdout, /NaN|undefined|Infinity/)
  for (const other of ['fleet', 'journal']) {
    t.match(stdout, new RegExp(`### ${other}\\n\\n(\\| |\\(bench/${other}\\.ts not present: skipped\\))`), `the ${other} section is run when present, noted when not`)
  }

  const files = readdirSync(out).filter(name => /^bench-.*\.json$/.test(name))
  t.equal(files.length, 1)
  const results = JSON.parse(readFileSync(join(out, files[0]), 'utf8'))
  t.equal(results.markdown.trim(), stdout.trim(), 'the JSON holds the printed report')
  t.match(results.machine, { cpus: Number, cpuModel: String, node: process.version })

  const { plan } = results
  t.same(Object.keys(results.sectionSeconds), ['overhead', 'recording', 'delivery', 'fleet', 'journal'], 'every section timed')

  // Every figure measured over rounds is summarized from exactly those rounds.
  const summaries: Array<[string, Summary]> = []
  const collect = (path: string, value: unknown): void => {
    if (value === null || typeof value !== 'object') return
    if (isSummary(value)) summaries.push([path, value])
    else for (const [key, inner] of Object.entries(value)) collect(`${path}.${key}`, inner)
  }
  for (const section of ['overhead', 'recording', 'delivery']) collect(section, results[section])
  const paths = summaries.map(([path]) => path)
  for (const path of ['recording.0.opsPerSecond', 'recording.1.heapBytesPerPair', 'delivery.recordsPerSecond', 'overhead.rows.5.extraCpuMicros']) {
    t.ok(paths.includes(path), `${path} summarized`)
  }
  const badSummaries = summaries.filter(([, { median, min, max, samples }]) =>
    samples.length !== plan.rounds || min !== Math.min(...samples) || max !== Math.max(...samples) || !(min <= median && median <= max))
  t.same(badSummaries.map(([path]) => path), [], 'each summary has one sample per round, and min ≤ median ≤ max of them')

  const rows = results.overhead.rows as Array<Record<string, any>>
  t.same(rows.map(row => row.case), ['bare', 'hook', 'unmetered', 'count-1k', 'metering-1k', 'metering-100k', 'rate-limit', 'naive',
    'express-bare', 'express-trivial', 'express-finish', 'express-unmetered', 'express-metered'])
  t.equal(results.overhead.samples.length, rows.length * plan.rounds, 'one sample per case and round')
  const row = (name: string): Record<string, any> => rows.find(r => r.case === name)!
  for (const one of rows) {
    t.equal(one.errors, 0, `${one.case} answered every request with 2xx`)
    t.ok(one.requestsPerSecond.median > 0 && one.serverCpuMicros.median > 0, `${one.case} was measured`)
    // Ratios and differences are taken to the bare server of the same framework, in the same round.
    t.equal(one.baseline, one.case.startsWith('express-') ? 'express-bare' : 'bare', `${one.case}: compared with bare ${one.case.startsWith('express-') ? 'Express' : 'Fastify'}`)
    const bare = row(one.baseline)
    one.requestsPerSecond.samples.forEach((rps: number, round: number) => {
      const cpu = one.serverCpuMicros.samples[round]
      t.ok(close(one.throughputRatio.samples[round], rps / bare.requestsPerSecond.samples[round]), `${one.case} round ${round}: throughput ratio to bare`)
      t.ok(close(one.cpuRatio.samples[round], cpu / bare.serverCpuMicros.samples[round]), `${one.case} round ${round}: CPU ratio to bare`)
      t.ok(close(one.extraCpuMicros.samples[round], cpu - bare.serverCpuMicros.samples[round]), `${one.case} round ${round}: extra CPU over bare`)
    })
  }
  for (const name of ['metering-1k', 'metering-100k', 'express-metered']) {
    t.ok(row(name).server.pendingPairs > 0 && row(name).server.pendingPairs <= 2 * row(name).customers, `${name}: at most two pairs per customer (${row(name).server.pendingPairs})`)
    t.equal(row(name).server.lost, 0, `${name} lost no usage`)
  }
  t.ok(row('count-1k').server.pendingPairs > 0 && row('count-1k').server.pendingPairs <= row('count-1k').customers, 'the one-count route metered one feature per customer')
  for (const name of ['unmetered', 'express-unmetered']) t.equal(row(name).server.pendingPairs, 0, `${name}: registered, nothing metered`)
  for (const name of ['bare', 'hook', 'express-bare', 'express-trivial']) t.equal(row(name).server.pendingPairs, undefined, `${name} runs without kinde-metering`)
  t.ok(rows.find(r => r.case === 'naive')!.server.posts.started > 0, 'the naive server posted usage')

  t.same(results.recording.map((r: { pairs: number }) => r.pairs), plan.recordingPairs)
  t.equal(results.delivery.pairs, plan.deliveryPairs)

  // The calls model: at most one record per request and meter, and at most one per pair and flush.
  t.equal(results.calls.rows.length, 8)
  for (const row of results.calls.rows) {
    const name = `${row.customers} customers at ${row.requestsPerSecond} req/s`
    t.equal(row.naive, 1_000_000 * row.meters, `${name}: naive posts one record per request and meter`)
    t.ok(close(row.aggregatedPerSecond, row.aggregated * row.requestsPerSecond / 1_000_000), `${name}: per second and per million agree`)
    t.ok(row.aggregatedPerSecond <= row.requestsPerSecond * row.meters * (1 + 1e-9), `${name}: no more records than the naive way`)
    t.ok(row.aggregatedPerSecond <= row.customers * row.meters / row.flushSeconds * (1 + 1e-9), `${name}: no more than one record per pair and flush`)
  }
  t.same(results.calls.measured.map((m: { customers: number }) => m.customers), [1_000, 100_000], 'the model is checked against both metered runs')

  const [separate, shared] = results.fleet.rows
  t.match([separate.variant, shared.variant], [/in-memory store each/, /one Redis store/])
  t.ok(shared.kindeCalls <= separate.kindeCalls, `a shared store never sends more records than one store per instance (${shared.kindeCalls} vs ${separate.kindeCalls})`)

  const journals = results.journal.rows
  t.equal(journals.length, 3)
  t.equal(journals[0].journalBytes, 0, 'no journal, nothing written')
  for (const row of journals.slice(1)) t.ok(row.journalBytes > 0, `${row.variant}: journal written`)
  // Requests per second are printed rounded to whole requests; the ratio is of the unrounded figures.
  for (const row of journals) {
    t.ok(Math.abs(row.ratio * journals[0].requestsPerSecond - row.requestsPerSecond) <= 0.5 + 0.5 * row.ratio + 1e-9, `${row.variant}: ratio to the run without journal`)
  }

  t.ok(results.targets.length >= 10)
  t.same(results.targets.filter((target: { met: string }) => !['yes', 'no', 'unclear'].includes(target.met)), [], 'every target judged yes, no or unclear')
  const verdict = (pattern: RegExp): string => results.targets.find((target: { target: string }) => pattern.test(target.target)).met
  t.equal(verdict(/^record\(\) ≥ 5,000,000 calls\/s/), results.recording[0].opsPerSecond.median >= 5_000_000 ? 'yes' : 'no', 'the recording target follows its figure')
  t.equal(verdict(/^≤ 200 heap bytes per pending pair/), results.recording[1].heapBytesPerPair.median <= 200 ? 'yes' : 'no', 'the memory target follows its figure')
  t.match(stdout, /route unmetered: ≥ 0\.97 of bare throughput/)
  t.match(stdout, /Express: a metered route costs no more than/)
})

/** Median, extremes and samples of a figure measured once per round. */
interface Summary { median: number, min: number, max: number, samples: number[] }

function isSummary (value: object): value is Summary {
  return 'median' in value && 'samples' in value && Array.isArray((value as Summary).samples)
}

/** Equal but for float rounding. */
function close (a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))
}
