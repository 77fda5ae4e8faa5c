/**
 * examples/express.ts end to end: it runs as a child process on the built package (dist/, made by
 * `npm run build`, which `npm test` runs first), serves real HTTP, and delivers at SIGTERM.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { startKindeEmulator } from '../../lib/testing.js'
import { expressNodeArgs } from '../helpers/express.js'
import { plainEnv } from '../helpers/processes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

interface Example { child: ChildProcessWithoutNullStreams, url: string, output: () => string }

/** Starts the example on an ephemeral port; resolves once it says where it listens. */
async function startExample (t: Test, env: Record<string, string>): Promise<Example> {
  // Without tap's instrumentation: the example runs what a user runs, not the code under coverage.
  const childEnv = plainEnv({ PORT: '0', ...env })
  const child = spawn(process.execPath, [...expressNodeArgs(), '--import', 'tsx', 'examples/express.ts'], {
    cwd: root, env: childEnv, signal: AbortSignal.timeout(30_000)
  })
  t.teardown(() => { if (child.exitCode === null) child.kill() })
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', chunk => { stderr += chunk })
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', chunk => {
      stdout += chunk
      const listening = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout)
      if (listening !== null) resolve(listening[1])
    })
    child.on('close', code => reject(new Error(`the example exited with ${code} before listening: ${stderr}`)))
  })
  return { child, url, output: () => stdout + stderr }
}

/** Sends the example's documented requests for `org`; resolves with the bytes /export streamed. */
async function traffic (t: Test, url: string, org: string): Promise<number> {
  const headers = { 'x-demo-org': org }
  for (let i = 0; i < 3; i++) await (await fetch(`${url}/search?q=kinde`, { headers })).arrayBuffer()
  await (await fetch(`${url}/search`)).arrayBuffer() // no organization: not billed
  const exported = (await (await fetch(`${url}/export`, { headers })).arrayBuffer()).byteLength
  const chat = await fetch(`${url}/chat`, {
    method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hello' })
  })
  // "You said 5 characters." is 22 characters: (5 + 22) / 4 tokens.
  t.same(await chat.json(), { reply: 'You said 5 characters.' })
  return exported
}

/** Sends SIGTERM and resolves with the exit code once the final flush is done. */
async function stop (example: Example): Promise<number | null> {
  example.child.kill('SIGTERM')
  const [code] = await once(example.child, 'close')
  return code
}

t.before(() => {
  if (!existsSync(new URL('../../dist/esm/express.js', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
  }
})

t.test('without KINDE_DOMAIN: serves against the emulator and delivers everything at SIGTERM', async t => {
  const example = await startExample(t, {})
  const exported = await traffic(t, example.url, 'org_demo')
  t.ok(exported > 800, `the export streamed ${exported} bytes`)
  const health = await (await fetch(`${example.url}/health`)).json() as { pending: unknown }
  t.same(health.pending, { pairs: 3, units: String(3 + exported + 6.75) })
  t.equal(await stop(example), 0, example.output())
  t.match(example.output(), /^Kinde emulator on http:\/\/127\.0\.0\.1:\d+ /m)
  t.match(example.output(), /^delivered 3 records to Kinde, 0 dropped$/m)
  t.match(example.output(), /^Kinde recorded: agr_demo searches 3$/m)
  t.match(example.output(), new RegExp(`^Kinde recorded: agr_demo egress_bytes ${exported}$`, 'm'))
  t.match(example.output(), /^Kinde recorded: agr_demo llm_tokens 6\.75$/m)
})

t.test('with KINDE_DOMAIN and credentials: Kinde holds exactly what was served', async t => {
  // Standing in for real Kinde: reached only through the environment, as a real domain would be.
  const kinde = await startKindeEmulator({
    organizations: [{ code: 'org_test', customerId: 'cus_test' }],
    agreements: [{ id: 'agr_test', customerId: 'cus_test', features: ['searches', 'egress_bytes', 'llm_tokens'] }]
  })
  t.teardown(() => kinde.close())
  const example = await startExample(t, {
    KINDE_DOMAIN: kinde.url,
    KINDE_MANAGEMENT_CLIENT_ID: kinde.clientId,
    KINDE_MANAGEMENT_CLIENT_SECRET: kinde.clientSecret
  })
  const exported = await traffic(t, example.url, 'org_test')
  t.equal(await stop(example), 0, example.output())
  t.notMatch(example.output(), /emulator/, 'no emulator of its own')
  t.equal(kinde.usage('agr_test', 'searches'), '3')
  t.equal(kinde.usage('agr_test', 'egress_bytes'), String(exported))
  t.equal(kinde.usage('agr_test', 'llm_tokens'), '6.75')
  t.equal(kinde.calls.organization, 1, 'the organization resolved once, at the flush')
})
