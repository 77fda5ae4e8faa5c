/**
 * The `kinde-metering` command line in-process: subcommand dispatch, help, usage errors (exit 2),
 * and doctor's human and JSON output against the emulator.
 */
import t from 'tap'
import { runCli } from '../../lib/cli/run.js'
import type { CliCommand } from '../../lib/cli/command.js'
import { startKindeEmulator } from '../../lib/testing.js'

function captured () {
  const out = { stdout: '', stderr: '' }
  const io = {
    stdout: { write: (text: string) => { out.stdout += text } },
    stderr: { write: (text: string) => { out.stderr += text } },
    env: {}
  }
  return { out, io }
}

t.test('help lists the commands; no command or an unknown one is a usage error', async t => {
  for (const help of ['--help', '-h', 'help']) {
    const { out, io } = captured()
    t.equal(await runCli([help], io), 0)
    t.match(out.stdout, /Usage: kinde-metering <command>[\s\S]*doctor +check the Kinde setup before going live/)
  }
  for (const [argv, message] of [[[], 'a command is required'], [['report'], 'unknown command "report"'], [['toString'], 'unknown command "toString"']] as const) {
    const { out, io } = captured()
    t.equal(await runCli([...argv], io), 2)
    t.match(out.stderr, message)
    t.match(out.stderr, /Usage: kinde-metering <command>/)
  }
})

t.test('doctor --help prints its options', async t => {
  const { out, io } = captured()
  t.equal(await runCli(['doctor', '--help'], io), 0)
  t.match(out.stdout, /--customer K=ID +a customer to resolve, K one of agreementId, customerId, userId, orgCode/)
})

t.test('doctor usage errors exit 2 naming what is wrong', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['--nope'], /Unknown option '--nope'/],
    [['extra'], /Unexpected argument 'extra'/],
    [['--customer', 'userId'], /--customer "userId" must be K=ID/],
    [['--customer', '=kp_1'], /must be K=ID/],
    [['--customer', 'userId=', '--feature', 'searches'], /must be K=ID/],
    [['--customer', 'userId=kp_1'], /--customer needs at least one --feature/],
    [['--feature', 'f'.repeat(300), '--domain', 'acme.kinde.com'], /option "features" must be an array of feature codes/]
  ]
  for (const [args, message] of cases) {
    const { out, io } = captured()
    t.equal(await runCli(['doctor', ...args], io), 2, args.join(' '))
    t.match(out.stderr, message)
    t.match(out.stderr, /Usage: kinde-metering doctor/)
  }
})

t.test('a command failing for another reason than its command line is not disguised as a usage error', async t => {
  const broken: CliCommand = { summary: 'fails', usage: '', run: async () => { throw new Error('a bug') } }
  await t.rejects(runCli(['broken'], captured().io, { broken }), { message: 'a bug' })
})

t.test('doctor prints one line per check with ✓ ✗ !, what to do under ✗ and !, and exits 1 on a failure', async t => {
  const kinde = await startKindeEmulator({
    users: [{ id: 'kp_1', customerId: 'cus_1' }],
    agreements: [{ id: 'agr_1', customerId: 'cus_1', features: ['searches'] }]
  })
  t.teardown(() => kinde.close())
  const flags = ['--domain', kinde.url, '--client-id', kinde.clientId, '--client-secret', kinde.clientSecret]
  const { out, io } = captured()
  const code = await runCli(['doctor', ...flags, '--feature', 'searches', '--feature', 'renders',
    '--customer', 'userId=kp_1', '--customer', 'agreementId=agr_1'], io)
  t.equal(code, 1)
  t.equal(out.stdout, [
    `✓ domain      ${kinde.url} answers as a Kinde business`,
    '✓ credentials Kinde issued a token to client id emulator-client-id',
    '✓ scopes      the token carries create:meter_usage, read:users, read:billing_agreements',
    '✓ customer    userId=kp_1 × searches → customer cus_1 → agreement agr_1',
    '✗ customer    userId=kp_1 × renders: feature renders is not in the plan of any agreement of customer cus_1 (agr_1: plan emulator_plan)',
    "    → check the feature code (the feature's key in the plan), or add the feature to the customer's plan in Kinde",
    "! customer    agreementId=agr_1 × searches: unverified: Kinde's API cannot look an agreement up on its own; usage is sent to agr_1 as is",
    '    → name the customer by customerId, userId or orgCode to have its agreement checked',
    "! customer    agreementId=agr_1 × renders: unverified: Kinde's API cannot look an agreement up on its own; usage is sent to agr_1 as is",
    '    → name the customer by customerId, userId or orgCode to have its agreement checked',
    '',
    '4 passed, 1 failed, 2 could not be verified: fix the ✗ lines before going live',
    ''
  ].join('\n'))
  t.equal(out.stderr, '')

  const json = captured()
  t.equal(await runCli(['doctor', ...flags, '--json'], json.io), 0)
  const report = JSON.parse(json.out.stdout)
  t.same({ ok: report.ok, origin: report.origin, counts: report.counts }, { ok: true, origin: kinde.url, counts: { pass: 3, fail: 0, warn: 0 } })
  const healthy = captured()
  t.equal(await runCli(['doctor', ...flags], healthy.io), 0)
  t.match(healthy.out.stdout, /\n3 passed, 0 failed, 0 could not be verified: nothing to fix\n$/)
  t.equal(kinde.calls.meter_usage, 0)
})
