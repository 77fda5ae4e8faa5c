/**
 * `npm run demo` end to end: the demo runs as a child process on the built package (dist/, made
 * by `npm run build`, which `npm test` runs first) for two seconds, and must reconcile.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startKindeEmulator } from '../../lib/testing.js'
import { plainEnv, run, type Finished } from '../helpers/processes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Runs examples/demo.ts with tsx, as `npm run demo` does after its build. */
function runDemo (env: Record<string, string>): Promise<Finished> {
  // Without tap's instrumentation: the demo runs what a user runs, not the code under coverage.
  const childEnv = plainEnv({ DEMO_SECONDS: '2', ...env })
  for (const name of ['DEMO_AGREEMENTS', 'DEMO_FEATURES']) if (!(name in env)) delete childEnv[name]
  return run(process.execPath, ['--import', 'tsx', 'examples/demo.ts'], { cwd: root, env: childEnv, timeoutMs: 30_000 })
}

/** Rows of the demo's final table: `agreement customer feature served …`, served without commas. */
function servedRows (stdout: string): Array<{ agreement: string, feature: string, served: string }> {
  return [...stdout.matchAll(/^ {2}(agr_\w+) +[\w-]+ +(\w+) +([\d,.]+)\b/gm)]
    .map(([, agreement, feature, served]) => ({ agreement, feature, served: served.replaceAll(',', '') }))
}

t.before(() => {
  if (!existsSync(new URL('../../dist/esm/index.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
  }
})

t.test('on the emulator: traffic, faults and retries, then served = recorded for every pair', async t => {
  const { code, stdout, stderr } = await runDemo({})
  t.equal(code, 0, stderr)
  t.match(stdout, /^reconciliation: OK \(served = recorded for 25 pairs\)$/m)
  t.match(stdout, /^\[ *[\d.]+s\] flush #1\b/m, 'flushes are shown as they happen')
  t.match(stdout, /faults injected by the emulator +429, 503, 503/)
  t.match(stdout, /flush #\d+ \(met faults: 429\b/, 'the flush that met the fault says so')
  t.match(stdout, /failures \(not applied \/ ambiguous\) +3 \/ 0$/m, 'each fault failed one send, which was delivered later')
  t.match(stdout, /GET \/report 500/, 'the failing route is listed as not counted')

  const rows = servedRows(stdout)
  t.equal(rows.length, 25)
  t.equal(rows.filter(row => row.feature === 'seats').length, 5, 'seats reconciled for every customer: the last value set is the one Kinde holds')
  for (const row of rows) {
    if (row.feature === 'renders') t.equal(row.served, '0', `${row.agreement}: a 500 is never billed`)
    else t.not(row.served, '0', `${row.agreement} ${row.feature} was served`)
  }
  t.ok(rows.some(row => row.agreement === 'agr_hooli'), 'the customer billed by userId reached its agreement')
  t.ok(rows.some(row => row.agreement === 'agr_umbrella'), 'the customer billed by orgCode reached its agreement')
  t.match(stdout, /llm_tokens +[\d,]+\.\d+ +[\d,]+\.\d+ +ok/, 'token usage carries decimals')
})

t.test('DEMO_AMBIGUOUS=1: a 500 that Kinde applied is retried and counted twice, and the reconciliation says so', async t => {
  const { code, stdout } = await runDemo({ DEMO_AMBIGUOUS: '1' })
  t.equal(code, 1)
  t.match(stdout, /faults injected by the emulator +429, 500, 503, 503/)
  t.match(stdout, /^reconciliation: MISMATCH \(1 of 25 pairs differ\)$/m)
  const [, served, recorded] = /^ {2}agr_\w+ +\w+ +\w+ +([\d,.]+) +([\d,.]+) +MISMATCH$/m.exec(stdout) ?? []
  t.ok(Number(recorded.replaceAll(',', '')) > Number(served.replaceAll(',', '')), 'Kinde holds more than was served, never less')
})

t.test('with KINDE_* set: bills DEMO_AGREEMENTS, and Kinde holds exactly what was served', async t => {
  const features = ['searches', 'egress_bytes', 'llm_tokens']
  // Standing in for real Kinde: reached only through the environment, like a real domain.
  const kinde = await startKindeEmulator({
    agreements: [{ id: 'agr_one', customerId: 'cus_one', features }, { id: 'agr_two', customerId: 'cus_two', features }]
  })
  t.teardown(() => kinde.close())
  const { code, stdout, stderr } = await runDemo({
    KINDE_DOMAIN: kinde.url,
    KINDE_MANAGEMENT_CLIENT_ID: kinde.clientId,
    KINDE_MANAGEMENT_CLIENT_SECRET: kinde.clientSecret,
    DEMO_AGREEMENTS: 'agr_one, agr_two'
  })
  t.equal(code, 0, stderr)
  t.match(stdout, /^reconciliation: OK \(served = accepted by Kinde: [\d,.]+ units over 8 pairs, none dropped\)$/m)
  t.notMatch(stdout, new RegExp(kinde.clientSecret), 'the secret is never printed')
  const rows = servedRows(stdout)
  t.equal(rows.length, 8)
  for (const row of rows) {
    t.equal(kinde.usage(row.agreement, row.feature), row.served, `${row.agreement} ${row.feature}`)
  }
})

t.test('with KINDE_* set but no DEMO_AGREEMENTS: says what is missing and exits 1', async t => {
  const { code, stderr } = await runDemo({
    KINDE_DOMAIN: 'http://127.0.0.1:9',
    KINDE_MANAGEMENT_CLIENT_ID: 'id',
    KINDE_MANAGEMENT_CLIENT_SECRET: 'secret'
  })
  t.equal(code, 1)
  t.match(stderr, /DEMO_AGREEMENTS must list the customer agreement ids/)
})
