/**
 * The examples run as users run them (child processes under tsx, on the built package through its
 * exports: `npm run build` first, which `npm test` does), serve real HTTP, and deliver exactly
 * what they served to Kinde when stopped, so they cannot rot.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { startKindeEmulator } from '../../lib/testing.js'
import { plainEnv } from '../helpers/processes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** A line an example prints (see examples/runner.ts), or a line of its Fastify log. */
interface Line {
  example?: string
  listening?: string
  try?: Record<string, string>
  kinde?: string | Record<string, Record<string, string>>
  level?: number
}

/** An example running as a child process. */
class ExampleProcess {
  readonly lines: Line[] = []
  stderr = ''
  readonly #child: ChildProcessWithoutNullStreams
  readonly #listening: Promise<Line>

  constructor (t: Test, file: string, env: Record<string, string>) {
    this.#child = spawn(process.execPath, ['--import', 'tsx', `examples/${file}`], {
      cwd: root, env: plainEnv({ PORT: '0', ...env }), signal: AbortSignal.timeout(60_000)
    })
    t.teardown(() => { if (this.#child.exitCode === null) this.#child.kill('SIGKILL') })
    this.#child.stderr.setEncoding('utf8').on('data', chunk => { this.stderr += chunk })
    this.#listening = new Promise((resolve, reject) => {
      createInterface({ input: this.#child.stdout }).on('line', text => {
        const line = JSON.parse(text) as Line
        this.lines.push(line)
        if (line.listening !== undefined) resolve(line)
      })
      this.#child.on('close', code => reject(new Error(`${file} exited with ${code} before listening: ${this.stderr}`)))
    })
  }

  /** The line saying where the example listens. */
  listening (): Promise<Line> {
    return this.#listening
  }

  /** Stops it as Ctrl-C would; resolves with the exit code once it has flushed and exited. */
  async stop (): Promise<number | null> {
    const closed = once(this.#child, 'close')
    this.#child.kill('SIGTERM')
    const [code] = await closed
    return code as number | null
  }

  /** What the emulator recorded, from the line printed after the final flush. */
  recorded (): Record<string, Record<string, string>> | undefined {
    const line = this.lines.find(one => typeof one.kinde === 'object')
    return line?.kinde as Record<string, Record<string, string>> | undefined
  }

  /** Fastify log entries at warn level or above. */
  warnings (): Line[] {
    return this.lines.filter(line => (line.level ?? 0) >= 40)
  }
}

/** Sends a request; resolves with the status and the body (JSON when it parses). */
async function call (url: string, init: RequestInit = {}): Promise<{ status: number, body: any, bytes: number }> {
  const response = await fetch(url, init)
  const text = await response.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.status, body, bytes: Buffer.byteLength(text) }
}

const json = (headers: Record<string, string>, body: unknown): RequestInit =>
  ({ method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })

t.before(() => {
  if (!existsSync(new URL('../../dist/esm/index.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
  }
})

t.test('basic: route meters per API key, billed to Kinde customers at shutdown', async t => {
  const example = new ExampleProcess(t, 'basic.ts', {})
  const { listening: url, try: tries } = await example.listening()
  t.match(tries?.search, `curl -H 'x-api-key: acme-key' '${url}/search?q=kinde'`, 'prints a request to try')
  const acme = { 'x-api-key': 'acme-key' }
  for (let i = 0; i < 3; i++) t.equal((await call(`${url}/search?q=kinde`, { headers: acme })).status, 200)
  t.equal((await call(`${url}/search?q=billing`, { headers: { 'x-api-key': 'globex-key' } })).status, 200)
  const exported = await call(`${url}/reports/7/export`, { headers: acme })
  t.match(exported.body, /^report,line,amount\n7,1,0\.00\n/)
  t.equal((await call(`${url}/search?q=free`)).status, 401, 'no key: refused and not metered')
  t.equal((await call(`${url}/search?q=free`, { headers: { 'x-api-key': 'stolen' } })).status, 401)

  const stats = await call(`${url}/metering`)
  t.same(stats.body.pending, { pairs: 3, units: String(4 + exported.bytes) }, 'pending until the flush')
  t.equal(stats.body.sent.records, 0)

  t.equal(await example.stop(), 0, example.stderr)
  t.same(example.recorded(), {
    agreement_acme: { searches: '3', export_bytes: String(exported.bytes) },
    agreement_globex: { searches: '1' }
  })
  t.same(example.warnings(), [])
})

t.test('llm-tokens: reply.meter bills the tokens a completion consumed, even when it fails', async t => {
  const example = new ExampleProcess(t, 'llm-tokens.ts', {})
  const { listening: url } = await example.listening()
  const key = { 'x-api-key': 'acme-key' }
  const first = await call(`${url}/v1/completions`, json(key, { prompt: 'write a haiku about invoices', max_tokens: 16 }))
  t.same(first.body.usage, { input_tokens: 5, output_tokens: 10 })
  const second = await call(`${url}/v1/completions`, json(key, { prompt: 'summarise this contract please', max_tokens: 3 }))
  t.same(second.body.usage, { input_tokens: 4, output_tokens: 3 })
  const failed = await call(`${url}/v1/completions`, json(key, { prompt: 'say nothing', max_tokens: 0 }))
  t.equal(failed.status, 502, 'the model failed after reading the prompt')
  t.equal((await call(`${url}/v1/completions`, json(key, { prompt: '' }))).status, 400, 'invalid: nothing consumed')
  t.equal((await call(`${url}/v1/completions`, json({}, { prompt: 'free lunch' }))).status, 401)

  t.equal(await example.stop(), 0, example.stderr)
  t.same(example.recorded(), {
    agreement_acme: { completions: '2', input_tokens: String(5 + 4 + 2), output_tokens: String(10 + 3) }
  })
  t.same(example.warnings(), [])
})

t.test('b2b-jwt: verified Kinde access tokens bill their organization', async t => {
  const example = new ExampleProcess(t, 'b2b-jwt.ts', {})
  const { listening: url, try: tries = {} } = await example.listening()
  const bearer = (org: string): Record<string, string> => {
    const token = /Bearer (\S+)'/.exec(tries[org])?.[1]
    t.ok(token, `prints a token to try for ${org}`)
    return { authorization: `Bearer ${token}` }
  }
  const acme = bearer('org_acme')
  const globex = bearer('org_globex')
  for (let i = 0; i < 2; i++) t.same((await call(`${url}/api/projects`, { headers: acme })).body.organization, 'org_acme')
  t.equal((await call(`${url}/api/reports`, json(acme, { pages: 12 }))).status, 201)
  t.equal((await call(`${url}/api/projects`, { headers: globex })).status, 200)
  t.equal((await call(`${url}/api/projects`)).status, 401, 'no token')
  const forged = acme.authorization.replace(/\.[^.]+$/, '.c2lnbmF0dXJl')
  t.equal((await call(`${url}/api/projects`, { headers: { authorization: forged } })).status, 401, 'bad signature')

  t.equal(await example.stop(), 0, example.stderr)
  t.same(example.recorded(), {
    agreement_acme: { api_calls: '2', reports: '1', report_pages: '12' },
    agreement_globex: { api_calls: '1' }
  })
  t.same(example.warnings(), [])
})

t.test('b2b-jwt with KINDE_DOMAIN: verifies and bills through the configured Kinde only', async t => {
  // Standing in for your Kinde, reached only through the environment.
  const kinde = await startKindeEmulator({
    organizations: [{ code: 'org_initech', customerId: 'customer_initech' }],
    agreements: [{ id: 'agreement_initech', customerId: 'customer_initech', features: ['api_calls', 'reports', 'report_pages'] }]
  })
  t.teardown(() => kinde.close())
  const audience = 'https://api.initech.example'
  const example = new ExampleProcess(t, 'b2b-jwt.ts', {
    KINDE_DOMAIN: kinde.url,
    KINDE_AUDIENCE: audience,
    KINDE_MANAGEMENT_CLIENT_ID: kinde.clientId,
    KINDE_MANAGEMENT_CLIENT_SECRET: kinde.clientSecret
  })
  const { listening: url, kinde: printed, try: tries } = await example.listening()
  t.equal(printed, kinde.url)
  t.same(tries, {}, 'no tokens to print: your users sign in with Kinde')
  const token = kinde.mintAccessToken({ sub: 'kp_peter', org_code: 'org_initech', aud: audience })
  const headers = { authorization: `Bearer ${token}` }
  t.equal((await call(`${url}/api/projects`, { headers })).status, 200)
  t.equal((await call(`${url}/api/reports`, json(headers, { pages: 3 }))).status, 201)
  const otherApi = kinde.mintAccessToken({ sub: 'kp_peter', org_code: 'org_initech' })
  t.equal((await call(`${url}/api/projects`, { headers: { authorization: `Bearer ${otherApi}` } })).status, 401,
    'a token for another audience is refused')

  t.equal(await example.stop(), 0, example.stderr)
  t.equal(example.recorded(), undefined, 'no emulator of its own')
  t.equal(kinde.usage('agreement_initech', 'api_calls'), '1')
  t.equal(kinde.usage('agreement_initech', 'reports'), '1')
  t.equal(kinde.usage('agreement_initech', 'report_pages'), '3')
  t.equal(kinde.calls.organization, 1, 'the organization was resolved once, at the flush')
})

t.test('every example runs in a test', async t => {
  const tested = new Set(['basic.ts', 'llm-tokens.ts', 'b2b-jwt.ts'])
  const examples = readdirSync(new URL('../../examples/', import.meta.url)).filter(file => file.endsWith('.ts') && file !== 'runner.ts')
  const tests = readdirSync(new URL('.', import.meta.url))
  for (const example of examples) {
    const name = example.replace(/\.ts$/, '')
    t.ok(tested.has(example) || tests.includes(`example-${name}.test.ts`) || tests.includes(`${name}.test.ts`),
      `examples/${example} is run by a test`)
  }
})
