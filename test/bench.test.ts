import t from 'tap'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { plainEnv } from './helpers/processes.js'

const root = fileURLToPath(new URL('..', import.meta.url))

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

  const rows = results.overhead.rows as Array<Record<string, any>>
  t.equal(rows.length, 13)
  for (const row of rows) {
    t.ok(row.requestsPerSecond.median > 0, `${row.case} served requests`)
    t.ok(row.serverCpuMicros.median > 0, `${row.case} CPU per request was read`)
    t.equal(row.errors, 0, `${row.case} answered every request with 2xx`)
  }
  const row = (name: string): Record<string, any> => rows.find(r => r.case === name)!
  t.equal(row('bare').throughputRatio.median, 1, 'Fastify ratios are to bare Fastify')
  t.equal(row('express-bare').throughputRatio.median, 1, 'Express ratios are to bare Express')
  t.equal(row('express-metered').baseline, 'express-bare')
  for (const name of ['metering-1k', 'metering-100k', 'express-metered']) {
    t.ok(row(name).server.pendingPairs > 0 && row(name).server.pendingPairs <= 2 * row(name).customers, `${name} metered usage`)
    t.equal(row(name).server.lost, 0, `${name} lost no usage`)
  }
  t.ok(row('count-1k').server.pendingPairs > 0 && row('count-1k').server.pendingPairs <= row('count-1k').customers, 'the one-count route metered one feature per customer')
  for (const name of ['unmetered', 'express-unmetered']) t.equal(row(name).server.pendingPairs, 0, `${name}: registered, nothing metered`)
  for (const name of ['bare', 'hook', 'express-bare', 'express-trivial']) t.equal(row(name).server.pendingPairs, undefined, `${name} runs without kinde-metering`)
  t.ok(rows.find(r => r.case === 'naive')!.server.posts.started > 0, 'the naive server posted usage')

  t.same(results.recording.map((r: { pairs: number }) => r.pairs), [1_000, 10_000])
  for (const row of results.recording) t.ok(row.opsPerSecond.median > 0 && row.heapBytesPerPair.median > 0)
  t.ok(results.delivery.recordsPerSecond.median > 0)
  t.equal(results.calls.rows.length, 8)
  t.equal(results.calls.measured.length, 2, 'the model is checked against both metered runs')
  t.ok(results.targets.length >= 10)
  t.match(stdout, /route unmetered: ≥ 0\.97 of bare throughput/)
  t.match(stdout, /Express: a metered route costs no more than/)
})
