/**
 * The parent's side of the fleet: starts `instance.ts` processes (through tsx's loader), and
 * talks to them over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { plainEnv } from '../../helpers/processes.js'
import { fileURLToPath } from 'node:url'
import type { FlushOutcome, MeteringStats } from '../../../lib/index.js'

/** What an instance is started with. */
export interface InstanceConfig {
  kinde: { url: string, clientId: string, clientSecret: string }
  /** redis-server port on 127.0.0.1; absent: the in-memory store. */
  redisPort?: number
  prefix?: string
  flushInterval: number
  syncInterval?: number
  leaseTtl?: number
  concurrency?: number
  /** Fastify log level; absent: no logging. */
  logLevel?: string
}

/** A message from the parent. */
export type InstanceRequest = { type: 'stats' | 'flush' | 'close', id: number }

/** A message from an instance. */
export type InstanceReply =
  | { type: 'ready', port: number, pid: number }
  | { type: 'reply', id: number, served?: number, leader?: boolean, stats?: MeteringStats, outcome?: FlushOutcome }

/** What `stats` answers. */
export interface InstanceStats { served: number, leader: boolean, stats: MeteringStats }

const SCRIPT = fileURLToPath(new URL('./instance.ts', import.meta.url))

/** A running instance. */
export class Instance {
  readonly port: number
  readonly #child: ChildProcess
  readonly #waiting = new Map<number, { resolve: (reply: any) => void, reject: (error: Error) => void }>()
  #next = 0
  #exited: Error | undefined
  #stderr = ''

  private constructor (child: ChildProcess, port: number) {
    this.#child = child
    this.port = port
    child.stderr?.on('data', (chunk: Buffer) => { this.#stderr = (this.#stderr + chunk.toString()).slice(-4000) })
    child.on('message', (reply: InstanceReply) => {
      if (reply.type !== 'reply') return
      this.#waiting.get(reply.id)?.resolve(reply)
      this.#waiting.delete(reply.id)
    })
    child.on('exit', (code, signal) => {
      this.#exited = new Error(`instance exited (${String(signal ?? code)})${this.#stderr === '' ? '' : `:\n${this.#stderr}`}`)
      for (const waiter of this.#waiting.values()) waiter.reject(this.#exited)
      this.#waiting.clear()
    })
  }

  /** Starts an instance and resolves once it listens. */
  static async start (config: InstanceConfig): Promise<Instance> {
    const child = fork(SCRIPT, [], {
      execArgv: ['--import', 'tsx'],
      // Without tap's coverage: a second transpilation of lib/ (tsx) must not merge into the parent's coverage.
      env: plainEnv({ KINDE_METERING_FLEET: JSON.stringify(config) }),
      stdio: ['ignore', 'inherit', 'pipe', 'ipc']
    })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const ready = await new Promise<{ port: number }>((resolve, reject) => {
      child.once('message', resolve)
      child.once('exit', code => { reject(new Error(`instance exited (${String(code)}) before listening:\n${stderr}`)) })
    })
    child.removeAllListeners('exit')
    return new Instance(child, ready.port)
  }

  get pid (): number { return this.#child.pid! }

  /** Its metering stats, requests served and whether it holds the lease. */
  stats (): Promise<InstanceStats> {
    return this.#ask('stats') as Promise<InstanceStats>
  }

  /** Runs one flush there. */
  async flush (): Promise<FlushOutcome> {
    return (await this.#ask('flush') as { outcome: FlushOutcome }).outcome
  }

  /** Closes the server gracefully (the plugin's close included) and lets the process end. */
  async close (): Promise<void> {
    if (this.#exited !== undefined) return
    const exited = new Promise(resolve => this.#child.once('exit', resolve))
    await this.#ask('close')
    await exited
  }

  /** Kills the process with SIGKILL: no close, no flush, no lease release. */
  async kill (): Promise<void> {
    if (this.#exited !== undefined) return
    const exited = new Promise(resolve => this.#child.once('exit', resolve))
    this.#child.kill('SIGKILL')
    await exited
  }

  #ask (type: InstanceRequest['type']): Promise<unknown> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited)
    const id = ++this.#next
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject })
      this.#child.send({ type, id } satisfies InstanceRequest)
    })
  }
}

/** Starts `count` instances with one configuration, in parallel. */
export async function startFleet (count: number, config: InstanceConfig): Promise<Instance[]> {
  return await Promise.all(Array.from({ length: count }, () => Instance.start(config)))
}

/** Sends `GET /search` billed to `agreementId` to an instance; resolves with the status. */
export async function search (instance: Instance, agreementId: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${instance.port}/search`, { headers: { 'x-agreement': agreementId } })
  await response.arrayBuffer()
  return response.status
}

/** Sends `PUT /seats/:value` for `agreementId` to an instance; resolves with the status. */
export async function setSeats (instance: Instance, agreementId: string, value: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${instance.port}/seats/${value}`, { method: 'PUT', headers: { 'x-agreement': agreementId } })
  await response.arrayBuffer()
  return response.status
}
