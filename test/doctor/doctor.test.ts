/**
 * checkKindeSetup() in-process, against the emulator over HTTP (and loopback servers that are not
 * Kinde): every reason a setup can fail, said with what to do, and nothing recorded.
 */
import t, { type Test } from 'tap'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkKindeSetup, type SetupReport } from '../../lib/index.js'
import { startKindeEmulator, type EmulatorOptions, type KindeEmulator } from '../../lib/testing.js'

const PAST = '2024-01-31T00:00:00Z'
const SECRET = 'emulator-client-secret'

async function kindeWith (t: Test, options: EmulatorOptions = {}): Promise<KindeEmulator> {
  const kinde = await startKindeEmulator({
    users: [{ id: 'kp_paying', customerId: 'cus_1' }, { id: 'kp_free' }],
    organizations: [{ code: 'org_paying', customerId: 'cus_2' }, { code: 'org_free' }],
    agreements: [
      { id: 'agr_1', customerId: 'cus_1', features: ['searches'] },
      { id: 'agr_2', customerId: 'cus_2', features: ['searches'] },
      { id: 'agr_lapsed', customerId: 'cus_lapsed', features: ['searches'], expiresOn: PAST },
      { id: 'agr_bare', customerId: 'cus_bare', planCode: 'basic', features: [] }
    ],
    ...options
  })
  t.teardown(() => kinde.close())
  return kinde
}

/** A loopback HTTP server that is not Kinde, answering every request with `listener`. */
async function notKinde (t: Test, listener: RequestListener): Promise<string> {
  const server = createServer(listener)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const on = (kinde: KindeEmulator) => ({ domain: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret, env: {} })
const lines = (report: SetupReport) => report.checks.map(check => `${check.status} ${check.name}: ${check.message}`)

t.test('every kind of customer resolves the way the plugin resolves it, and nothing is recorded', async t => {
  const kinde = await kindeWith(t)
  const report = await checkKindeSetup({
    ...on(kinde),
    features: ['searches'],
    customers: [{ userId: 'kp_paying' }, { orgCode: 'org_paying' }, { customerId: 'cus_1' }, { agreementId: 'agr_9' }]
  })
  t.same(lines(report), [
    `pass domain: ${kinde.url} answers as a Kinde business`,
    'pass credentials: Kinde issued a token to client id emulator-client-id',
    'pass scopes: the token carries create:meter_usage, read:users, read:organizations, read:billing_agreements',
    'pass customer: userId=kp_paying × searches → customer cus_1 → agreement agr_1',
    'pass customer: orgCode=org_paying × searches → customer cus_2 → agreement agr_2',
    'pass customer: customerId=cus_1 × searches → agreement agr_1',
    "warn customer: agreementId=agr_9 × searches: unverified: Kinde's API cannot look an agreement up on its own; usage is sent to agr_9 as is"
  ])
  t.same({ ok: report.ok, origin: report.origin, counts: report.counts }, { ok: true, origin: kinde.url, counts: { pass: 6, fail: 0, warn: 1 } })
  t.same(report.checks[3], { name: 'customer', status: 'pass', customer: { userId: 'kp_paying' }, feature: 'searches', message: report.checks[3].message, agreementId: 'agr_1' })
  t.equal(kinde.calls.meter_usage, 0, 'no usage recorded')
  t.equal(kinde.calls.token, 1, 'one token for every check')
})

t.test('each reason a customer cannot be billed is named, with what to do', async t => {
  const kinde = await kindeWith(t)
  const report = await checkKindeSetup({
    ...on(kinde),
    features: ['searches'],
    customers: [{ userId: 'kp_nobody' }, { userId: 'kp_free' }, { orgCode: 'org_nobody' }, { orgCode: 'org_free' },
      { customerId: 'cus_lapsed' }, { customerId: 'cus_bare' }, { customerId: 'cus_nobody' }]
  })
  t.same(lines(report).slice(3), [
    'fail customer: userId=kp_nobody × searches: Kinde knows no user kp_nobody',
    'fail customer: userId=kp_free × searches: user kp_free is not a billing customer',
    'fail customer: orgCode=org_nobody × searches: Kinde knows no organization org_nobody',
    'fail customer: orgCode=org_free × searches: organization org_free is not a billing customer',
    `fail customer: customerId=cus_lapsed × searches: customer cus_lapsed has only expired agreements with feature searches (agr_lapsed expired on ${PAST})`,
    'fail customer: customerId=cus_bare × searches: feature searches is not in the plan of any agreement of customer cus_bare (agr_bare: plan basic)',
    'fail customer: customerId=cus_nobody × searches: customer cus_nobody holds no agreement (or is not a billing customer)'
  ])
  t.same(report.checks.slice(3).map(check => check.fix), [
    'check the user id (the sub claim of its tokens)',
    'in Kinde, subscribe the user to a plan (Billing), or bill it another way',
    'check the organization code (the org_code claim of its tokens)',
    'in Kinde, subscribe the organization to a plan (Billing), or bill it another way',
    "in Kinde, renew the customer's subscription to a plan that includes the feature",
    "check the feature code (the feature's key in the plan), or add the feature to the customer's plan in Kinde",
    'in Kinde, subscribe the customer to a plan that includes the feature'
  ])
  t.same({ ok: report.ok, counts: report.counts }, { ok: false, counts: { pass: 3, fail: 7, warn: 0 } })
})

t.test('missing scopes fail the scopes check, and each look-up they refuse names its scope', async t => {
  const kinde = await kindeWith(t, { scopes: ['create:meter_usage'] })
  const report = await checkKindeSetup({ ...on(kinde), features: ['searches'], customers: [{ userId: 'kp_paying' }, { customerId: 'cus_1' }] })
  t.same(report.checks[2], {
    name: 'scopes',
    status: 'fail',
    message: 'the token lacks read:users (to look up userId customers), read:billing_agreements (to find the agreements of customers)',
    fix: "in Kinde, Settings > APIs > Kinde Management API > Applications: open this application's scopes and enable read:users, read:billing_agreements",
    missingScopes: ['read:users', 'read:billing_agreements']
  })
  t.same(lines(report).slice(3), [
    'fail customer: userId=kp_paying × searches: the user look-up was refused (HTTP 403): the token lacks read:users',
    'fail customer: customerId=cus_1 × searches: the agreements look-up was refused (HTTP 403): the token lacks read:billing_agreements'
  ])
})

t.test('without customers only create:meter_usage is needed, and features alone cannot be checked', async t => {
  const kinde = await kindeWith(t, { scopes: ['create:meter_usage'] })
  const report = await checkKindeSetup({ ...on(kinde), features: ['searches', 'renders'] })
  t.same(lines(report).slice(2), [
    'pass scopes: the token carries create:meter_usage',
    'warn features: features searches, renders not checked: Kinde lists features per customer agreement'
  ])
  t.equal(report.ok, true, 'warnings do not fail a setup')
  t.equal(report.checks[3].fix, 'name a customer (--customer) whose plan should include them')
})

t.test('a look-up Kinde cannot answer now fails the customer, saying to try again', async t => {
  const kinde = await kindeWith(t)
  kinde.fault({ endpoint: 'agreements', kind: 'status', status: 503 })
  const report = await checkKindeSetup({ ...on(kinde), features: ['searches'], customers: [{ customerId: 'cus_1' }] })
  t.match(report.checks[3], { status: 'fail', message: /^customerId=cus_1 × searches: agreements look-up failed with HTTP 503/, fix: /try again shortly/ })
})

t.test('the domain must be given and well formed; nothing is sent otherwise', async t => {
  for (const [domain, message] of [[undefined, /option "domain" is required \(or set KINDE_DOMAIN\)/], ['https://acme.kinde.com/login', /must be a bare domain/]] as const) {
    const report = await checkKindeSetup({ domain, clientId: 'id', clientSecret: SECRET, env: {} })
    t.same(report.checks.map(check => [check.name, check.status]), [['domain', 'fail']])
    t.match(report.checks[0], { message, fix: /--domain \(or set KINDE_DOMAIN\)/ })
    t.equal(report.origin, undefined)
  }
})

t.test('the domain and credentials are read from KINDE_* by default', async t => {
  const kinde = await kindeWith(t)
  const report = await checkKindeSetup({ env: { KINDE_DOMAIN: kinde.url, KINDE_MANAGEMENT_CLIENT_ID: kinde.clientId, KINDE_MANAGEMENT_CLIENT_SECRET: SECRET } })
  t.equal(report.ok, true)
})

t.test('missing credentials fail the credentials check; the domain is left unverified', async t => {
  const kinde = await kindeWith(t)
  for (const [options, message, flag] of [[{ clientSecret: SECRET }, 'no client id given', '--client-id'], [{ clientId: kinde.clientId }, 'no client secret given', '--client-secret']] as const) {
    const report = await checkKindeSetup({ domain: kinde.url, ...options, env: {} })
    t.same(report.checks.map(check => [check.name, check.status]), [['domain', 'warn'], ['credentials', 'fail']])
    t.equal(report.checks[1].message, message)
    t.match(report.checks[1].fix, flag)
  }
  t.equal(kinde.calls.token, 0)
})

t.test('a wrong secret is named, never printed', async t => {
  const kinde = await kindeWith(t)
  const report = await checkKindeSetup({ ...on(kinde), clientSecret: 'not-the-secret' })
  t.same(lines(report), [
    `pass domain: ${kinde.url} answers as a Kinde business`,
    'fail credentials: Kinde refused client id emulator-client-id with the client secret given (invalid_client)'
  ])
  t.notOk(JSON.stringify(report).includes('not-the-secret'))
})

t.test('a token refused for another reason points at the application, with any echo of the secret masked', async t => {
  const domain = await notKinde(t, (_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unauthorized_client', error_description: `client ${SECRET} is not M2M` }))
  })
  const report = await checkKindeSetup({ domain, clientId: 'id', clientSecret: SECRET, env: {} })
  t.match(report.checks[1], { status: 'fail', message: /unauthorized_client: client \*{8} is not M2M/, fix: /machine-to-machine application authorized for the Kinde Management API/ })
  t.notOk(JSON.stringify(report).includes(SECRET))
})

t.test('a domain that is not Kinde: an HTML page, or a 5xx without an OAuth answer', async t => {
  const html = await notKinde(t, (_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>Welcome</html>') })
  const down = await notKinde(t, (_req, res) => { res.writeHead(502, { 'content-type': 'text/html' }).end('Bad gateway') })
  const checkOf = async (domain: string) => (await checkKindeSetup({ domain, clientId: 'id', clientSecret: SECRET, env: {} })).checks
  t.match(await checkOf(html), [{ name: 'domain', status: 'fail', message: /is not a Kinde business domain: its token endpoint answered HTTP 200 without an OAuth answer/ }])
  t.match(await checkOf(down), [{ name: 'domain', status: 'fail', message: /answered HTTP 502: Kinde is unavailable, or this is not a Kinde domain/, fix: /^try again shortly/ }])
})

t.test('a token answer that lists no scopes leaves them unverified', async t => {
  const domain = await notKinde(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'opaque', expires_in: 60 }))
  })
  const report = await checkKindeSetup({ domain, clientId: 'id', clientSecret: SECRET, env: {} })
  t.match(report.checks[2], { name: 'scopes', status: 'warn', message: /listed no scopes, so these could not be verified: create:meter_usage/ })
})

t.test('an unreachable domain says so', async t => {
  const kinde = await kindeWith(t)
  const url = kinde.url
  await kinde.close()
  const report = await checkKindeSetup({ domain: url, clientId: 'id', clientSecret: SECRET, env: {} })
  t.match(report.checks, [{ name: 'domain', status: 'fail', message: /could not be reached: .*ECONNREFUSED/, fix: /typos/ }])
})

t.test('invalid options throw, naming the option, before anything is sent', async t => {
  const kinde = await kindeWith(t)
  const cases: Array<[Parameters<typeof checkKindeSetup>[0], string]> = [
    [{ features: 'searches' as unknown as string[] }, 'features'],
    [{ features: [''] }, 'features'],
    [{ customers: {} as unknown as [] }, 'customers'],
    [{ features: ['searches'], customers: [{ userId: 'kp_1' }, { email: 'a@b.c' } as never] }, 'customers[1]'],
    [{ features: ['searches'], customers: [{ userId: 'kp_1', orgCode: 'org_1' } as never] }, 'customers[0]'],
    [{ features: ['searches'], customers: [null as never] }, 'customers[0]'],
    [{ customers: [{ userId: 'kp_1' }] }, 'features'],
    [{ requestTimeout: -1 }, 'requestTimeout']
  ]
  for (const [options, option] of cases) {
    await t.rejects(checkKindeSetup({ ...on(kinde), ...options }), { name: 'InvalidOptionError', option }, option)
  }
  t.equal(kinde.calls.token, 0)
})
