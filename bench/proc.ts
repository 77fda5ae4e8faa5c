/**
 * Child processes for the benchmark: each measured party (server, load generator, emulator,
 * recorder) runs in its own Node process, pinned to a core with `taskset` where it can be, and
 * talks to the harness over the IPC channel. CPU time is read from `/proc/<pid>/stat`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'

/** The repository root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Where the measured processes load kinde-metering from: the build (`dist/esm`) or the sources. */
export type PackageSource = 'dist' | 'lib'

/** Pinning needs taskset and two cores: the server on core 0, its load on core 1. */
export const PINNED = existsSync('/usr/bin/taskset') && availableParallelism() >= 2

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** User + system CPU time a process has used, in µs (all its threads), from `/proc/<pid>/stat`. */
export function cpuMicros (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which may itself hold spaces: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLOCK_TICKS
}

/** A message on the IPC channel: a `type` and anything else. */
export interface Message { type: string, [field: string]: unknown }

/** A running child with a typed message inbox. */
export class Child {
  readonly process: ChildProcess
  readonly #inbox: Message[] = []
  readonly #waiting: Array<{ type: string, resolve: (message: any) => void, reject: (error: Error) => void }> = []
  #exit: Error | undefined

  constructor (child: ChildProcess, name: string) {
    this.process = child
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
    child.on('message', (message: Message) => {
      const at = this.#waiting.findIndex(waiter => waiter.type === message.type)
      if (at === -1) this.#inbox.push(message)
      else this.#waiting.splice(at, 1)[0].resolve(message)
    })
    child.on('exit', (code, signal) => {
      this.#exit = new Error(`${name} exited (${signal ?? code}) before answering${stderr === '' ? '' : `:\n${stderr}`}`)
      for (const waiter of this.#waiting.splice(0)) waiter.reject(this.#exit)
    })
  }

  /** Process id: the node process itself (taskset execs it). */
  get pid (): number { return this.process.pid! }

  /** Resolves with the next message of this type (already received or to come). */
  next<T = Message> (type: string): Promise<T> {
    const at = this.#inbox.findIndex(message => message.type === type)
    if (at !== -1) return Promise.resolve(this.#inbox.splice(at, 1)[0] as T)
    if (this.#exit !== undefined) return Promise.reject(this.#exit)
    return new Promise((resolve, reject) => this.#waiting.push({ type, resolve, reject }))
  }

  send (message: Message): void {
    this.process.send(message)
  }

  /** Sends a request and waits for the answer of type `${type}:done`. */
  async ask<T = Message> (message: Message): Promise<T> {
    this.send(message)
    return this.next<T>(`${message.type}:done`)
  }

  /** Ends the child at once (measured processes hold nothing worth a graceful close) and waits for its exit. */
  async kill (): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return
    const exited = new Promise(resolve => this.process.once('exit', resolve))
    this.process.kill('SIGKILL')
    await exited
  }
}

/**
 * Starts `bench/<script>` in a new Node process (TypeScript through tsx), pinned to `core` when
 * pinning is possible, with the configuration as a JSON argument.
 */
export function startChild (script: string, config: object, options: { core: number, from: PackageSource, nodeArgs?: string[] }): Child {
  const node = [process.execPath, '--import', 'tsx', ...(options.nodeArgs ?? []), `${ROOT}bench/${script}`, JSON.stringify(config)]
  const command = PINNED ? ['taskset', '-c', String(options.core), ...node] : node
  const env = { ...process.env, KINDE_METERING_BENCH_FROM: options.from }
  const child = spawn(command[0], command.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  return new Child(child, script)
}

/** Reads the JSON configuration a child was started with. */
export function childConfig<T> (): T {
  return JSON.parse(process.argv[2]) as T
}

/** Sends a message to the harness. */
export function tell (message: Message): void {
  process.send!(message)
}

/** Answers each request of `type` from the harness with `${type}:done` and what `handler` returns. */
export function answer (type: string, handler: (message: Message) => object | Promise<object>): void {
  process.on('message', (message: Message) => {
    if (message.type !== type) return
    void Promise.resolve(handler(message)).then(result => tell({ type: `${type}:done`, ...result }))
  })
}
