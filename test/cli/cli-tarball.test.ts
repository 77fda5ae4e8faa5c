/**
 * `npx kinde-metering doctor` as users run it: the bin of the packed tarball, installed into a
 * bare project, run against the emulator over HTTP. `npm run build` must have run (npm test does).
 */
import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { startKindeEmulator, type KindeEmulator } from '../../lib/testing.js'
import { packAndInstall, npm } from '../helpers/packed.js'
import { plainEnv, run } from '../helpers/processes.js'

const SECRET = 'correct-horse-battery-staple'
const PAST = '2024-01-31T00:00:00Z'

async function kindeWith (t: Test, scopes?: string[]): Promise<KindeEmulator> {
  const kinde = await startKindeEmulator({
    clientSecret: SECRET,
    scopes,
    users: [{ id: 'kp_renewed', customerId: 'cus_renewed' }],
    organizations: [{ code: 'org_acme', customerId: 'cus_acme' }],
    agreements: [
      // Listed first, as Kinde lists a customer's older agreements.
      { id: 'agr_expired', customerId: 'cus_renewed', features: ['searches'], expiresOn: PAST },
      { id: 'agr_renewed', customerId: 'cus_renewed', features: ['searches'] },
      { id: 'agr_acme', customerId: 'cus_acme', planCode: 'starter', features: ['searches'] }
    ]
  })
  t.teardown(() => kinde.close())
  return kinde
}

t.test('kinde-metering doctor from the packed tarball', async t => {
  const { app } = await packAndInstall(t)
  const bin = join(app, 'node_modules/.bin/kinde-metering')
  const doctor = (args: string[], env: Record<string, string> = {}) => run(bin, ['doctor', ...args], { cwd: app, env: plainEnv(env) })
  const flags = (kinde: KindeEmulator, secret = kinde.clientSecret): string[] =>
    ['--domain', kinde.url, '--client-id', kinde.clientId, '--client-secret', secret]

  t.test('a healthy setup passes, through npx and the KINDE_* variables, and records no usage', async t => {
    const kinde = await kindeWith(t)
    const env = { KINDE_DOMAIN: kinde.url, KINDE_MANAGEMENT_CLIENT_ID: kinde.clientId, KINDE_MANAGEMENT_CLIENT_SECRET: SECRET }
    const result = await run(npm, ['exec', '--no', '--', 'kinde-metering', 'doctor', '--feature', 'searches', '--customer', 'orgCode=org_acme'],
      { cwd: app, env: plainEnv(env) })
    t.equal(result.code, 0, 'exit 0', { stdout: result.stdout, stderr: result.stderr })
    t.match(result.stdout, /^✓ domain .*\n✓ credentials .*\n✓ scopes .*create:meter_usage.*\n✓ customer +orgCode=org_acme × searches → customer cus_acme → agreement agr_acme\n/)
    t.match(result.stdout, /\n4 passed, 0 failed, 0 could not be verified: nothing to fix\n$/)
    t.notOk(result.stdout.includes(SECRET) || result.stderr.includes(SECRET), 'the secret is never printed')
    t.equal(kinde.calls.meter_usage, 0, 'the emulator received no meter usage request')
    t.equal(kinde.calls.token, 1, 'one token for every check')
  })

  t.test('a wrong secret fails, naming the secret without printing it', async t => {
    const kinde = await kindeWith(t)
    const wrong = 'wrong-secret-do-not-print'
    const result = await doctor(flags(kinde, wrong))
    t.equal(result.code, 1)
    t.match(result.stdout, /✓ domain .*\n✗ credentials .*client id emulator-client-id with the client secret given \(invalid_client\)/)
    t.match(result.stdout, /--client-secret, KINDE_MANAGEMENT_CLIENT_SECRET/)
    t.notOk(`${result.stdout}${result.stderr}`.includes(wrong), 'the secret given is not printed')
  })

  t.test('an application without read:organizations, checking an orgCode, fails naming the scope', async t => {
    const kinde = await kindeWith(t, ['create:meter_usage', 'read:users', 'read:billing_agreements'])
    const result = await doctor([...flags(kinde), '--feature', 'searches', '--customer', 'orgCode=org_acme'])
    t.equal(result.code, 1)
    t.match(result.stdout, /✗ scopes +the token lacks read:organizations \(to look up orgCode customers\)/)
    t.match(result.stdout, /✗ customer +orgCode=org_acme × searches: the organization look-up was refused \(HTTP 403\): the token lacks read:organizations/)
    t.match(result.stdout, /enable read:organizations/)
  })

  t.test('a feature not in the customer\'s plan fails, naming the feature', async t => {
    const kinde = await kindeWith(t)
    const result = await doctor([...flags(kinde), '--feature', 'exports', '--customer', 'orgCode=org_acme'])
    t.equal(result.code, 1)
    t.match(result.stdout, /✗ customer +orgCode=org_acme × exports: feature exports is not in the plan of any agreement of customer cus_acme \(agr_acme: plan starter\)/)
  })

  t.test('an expired agreement listed before the active one: passes on the active one', async t => {
    const kinde = await kindeWith(t)
    const result = await doctor([...flags(kinde), '--feature', 'searches', '--customer', 'userId=kp_renewed', '--json'])
    t.equal(result.code, 0, 'exit 0', { stdout: result.stdout, stderr: result.stderr })
    const report = JSON.parse(result.stdout) as { ok: boolean, checks: Array<{ name: string, status: string, agreementId?: string }> }
    t.equal(report.ok, true)
    t.same(report.checks.map(check => [check.name, check.status]), [['domain', 'pass'], ['credentials', 'pass'], ['scopes', 'pass'], ['customer', 'pass']])
    t.equal(report.checks[3].agreementId, 'agr_renewed')
  })

  t.test('a domain that is not a Kinde business fails, and says so', async t => {
    const site = createServer((_req, res) => { res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>Not found</body></html>') })
    await new Promise<void>(resolve => site.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise(resolve => site.close(resolve)))
    const result = await doctor(['--domain', `http://127.0.0.1:${(site.address() as AddressInfo).port}`, '--client-id', 'id', '--client-secret', SECRET])
    t.equal(result.code, 1)
    t.match(result.stdout, /✗ domain +http:\/\/127\.0\.0\.1:\d+ is not a Kinde business domain: its token endpoint answered HTTP 404 without an OAuth answer \(a custom domain, or a typo\?\)/)
    t.match(result.stdout, /https:\/\/<your_subdomain>\.kinde\.com/)
    t.notOk(result.stdout.includes('credentials'), 'no credentials check against a domain that is not Kinde')
  })

  t.test('a wrong command line exits 2 with the usage', async t => {
    for (const args of [['--frobnicate'], ['--customer', 'email=a@b.c', '--feature', 'searches'], ['--customer', 'userId=kp_1']]) {
      const result = await doctor(args)
      t.equal(result.code, 2, args.join(' '))
      t.match(result.stderr, /Usage: kinde-metering doctor/)
      t.equal(result.stdout, '')
    }
  })
})
