/**
 * Child processes for tests that run what users run (tsc, npm, Node consumers, the examples).
 * They run without tap's instrumentation, as a user's process would: they are not the code under
 * coverage, and the coverage hooks would only slow them down.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'

/** What a finished process left. */
export interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

/** The TypeScript compiler of this repository, as a script for `node`. */
export const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc')

/**
 * `process.env` without tap's loader and settings, and without `KINDE_*` variables: a developer's
 * shell must never point a test at a real Kinde.
 */
export function plainEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    const tapOwned = name === 'NODE_OPTIONS' || name === 'NODE_V8_COVERAGE' || name === 'TAP' || name.startsWith('TAP_') || name.startsWith('_TAPJS_')
    if (!tapOwned && !name.startsWith('KINDE_')) env[name] = value
  }
  // tap's process tracking wraps spawn() itself and would still collect the child's coverage; a
  // child that loads lib/ through another transpiler (tsx) would then blur the parent's figures.
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...extra }
}

/** Runs `command` to its end and collects its output; resolves whatever the exit code. */
export function run (command: string, args: string[], options: { cwd: string, env?: NodeJS.ProcessEnv, timeoutMs?: number }): Promise<Finished> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? plainEnv(),
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000)
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', chunk => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', chunk => { stderr += chunk })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}
