/**
 * Starts the child processes of the journal tests (TypeScript through tsx) and reads the JSON
 * lines they print. Every child is killed at teardown if the test did not kill it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { plainEnv } from '../../helpers/processes.js'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import type { KindeEmulator } from '../../../lib/testing.js'
import type { ServerConfig } from './server.js'

/** A child process and the JSON lines it printed, in order. */
export interface Child {
  process: ChildProcess
  /** Resolves with the next printed line that has `field` (already printed or to come). */
  next<T = any> (field: string): Promise<T>
  /** Every line printed so far. */
  lines: any[]
  /** Kills the process with SIGKILL, as a crash would, and waits until it is gone. */
  kill (): Promise<void>
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>
}

/** Runs `test/core/journal/<script>` with `args`, `env` added to the environment, as user `uid` (this process's without). */
export function startChild (t: Test, script: string, args: string[], env: NodeJS.ProcessEnv = {}, uid?: number): Child {
  const path = fileURLToPath(new URL(script, import.meta.url))
  const node = [process.execPath, '--import', 'tsx', path, ...args]
  // tap's process tracking puts itself back in NODE_OPTIONS, and another user may not write its
  // files: `env` takes it out of that child's environment.
  const [command, ...argv] = uid === undefined ? node : ['env', '-u', 'NODE_OPTIONS', ...node]
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...plainEnv(), ...env }, uid })
  const lines: any[] = []
  const inbox: any[] = []
  const waiting: Array<{ field: string, resolve: (line: any) => void, reject: (error: Error) => void }> = []
  let ended: Error | undefined
  const exited = once(child, 'exit').then(([code, signal]) => {
    ended = new Error(`${script} exited (${String(signal ?? code)})`)
    for (const waiter of waiting.splice(0)) waiter.reject(ended)
    return code as number | null
  })
  createInterface({ input: child.stdout! }).on('line', text => {
    const line = JSON.parse(text)
    lines.push(line)
    const at = waiting.findIndex(waiter => waiter.field in line)
    if (at === -1) inbox.push(line)
    else waiting.splice(at, 1)[0].resolve(line)
  })
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  return {
    process: child,
    lines,
    exited,
    kill,
    next (field) {
      const at = inbox.findIndex(line => field in line)
      if (at !== -1) return Promise.resolve(inbox.splice(at, 1)[0])
      if (ended !== undefined) return Promise.reject(ended)
      return new Promise((resolve, reject) => waiting.push({ field, resolve, reject }))
    }
  }
}

/** Journals `steps` in a child process (see hold.ts), which is then killed: the journal a crash leaves. */
export async function deadJournal (t: Test, dir: string, steps: unknown[]): Promise<any[]> {
  const child = startChild(t, 'hold.ts', [dir, JSON.stringify(steps)])
  await child.next('ready')
  await child.kill()
  return child.lines.filter(line => 'step' in line).map(line => line.stats)
}

/**
 * Starts `server.ts`: a metered Fastify app with a journal in `dir` on the emulator, flushing
 * every 150 ms, its journal batched every `syncInterval` ms; killed at teardown if still running.
 */
export function startJournalServer (t: Test, kinde: KindeEmulator, syncInterval: number, dir: string, ambiguous: 'retry' | 'drop'): Child {
  const config: ServerConfig = {
    kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
    dir,
    ambiguous,
    syncInterval,
    flushInterval: 150
  }
  return startChild(t, 'server.ts', [JSON.stringify(config)])
}
