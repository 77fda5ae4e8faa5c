/**
 * A real Redis for tests and benchmarks: a redis-server of its own, started on a free 127.0.0.1
 * port with persistence off, or, when `REDIS_URL` names a running Redis, an empty database of it
 * behind a loopback proxy (./shared-redis.ts). Either can be stopped, restarted empty on the same
 * port and stalled, to play an outage. `npm test` provides one or the other (scripts/services.js).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createConnection, createServer } from 'node:net'
import { onPath } from '../../scripts/services.js'
import { startSharedRedis } from './shared-redis.js'

/** A running (or stopped) redis-server. */
export interface RedisServer {
  /** Port on 127.0.0.1; kept across {@link RedisServer.stop} and {@link RedisServer.start}. */
  readonly port: number
  /** Starts the server again on the same port (empty: nothing is persisted). */
  start (): Promise<void>
  /** Stops the server (SIGKILL, as a crash) and waits for it to exit; idempotent. */
  stop (): Promise<void>
  /** Holds every client's commands for `ms` (as `CLIENT PAUSE ms ALL`), answering none meanwhile. */
  pause (ms: number): Promise<void>
}

/** Why no Redis can be had here, or undefined when `REDIS_URL` is set or redis-server is on PATH. */
export function redisUnavailable (env: NodeJS.ProcessEnv = process.env): string | undefined {
  if ((env.REDIS_URL ?? '') !== '' || onPath('redis-server', env.PATH)) return undefined
  return 'redis-server is not on PATH and REDIS_URL is not set (`node scripts/services.js` says how to get one)'
}

/** Asks the kernel for a port that is free now. */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

/** Spawns redis-server and resolves once it says it accepts connections. */
async function launch (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        child.stdout!.off('data', onData)
        child.off('exit', onExit)
        child.stdout!.resume()
        resolve()
      }
    }
    const onExit = (code: number | null): void => { reject(new Error(`redis-server exited (${String(code)}): ${output}`)) }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('exit', onExit)
    child.once('error', error => { reject(new Error(`redis-server could not be started: ${error.message}; ${redisUnavailable() ?? 'is it executable?'}`)) })
  })
  return child
}

/** Sends one command to the redis-server on `port` and resolves once it answered. */
async function command (port: number, args: string[]): Promise<void> {
  const socket = createConnection(port, '127.0.0.1')
  socket.end(`*${args.length}\r\n${args.map(arg => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`)
  const answer = await new Promise<string>((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => { resolve(chunk.toString()) }).once('error', reject)
  })
  socket.destroy()
  if (!answer.startsWith('+')) throw new Error(`redis-server answered ${args.join(' ')}: ${answer.trim()}`)
}

/**
 * Starts a Redis for one test (a redis-server of its own, or a database of `REDIS_URL`'s). Call
 * `stop()` in teardown.
 */
export async function startRedisServer (): Promise<RedisServer> {
  const url = process.env.REDIS_URL
  if (url !== undefined && url !== '') return await startSharedRedis(url)
  let port = await freePort()
  let child: ChildProcess | undefined
  for (let attempt = 1; child === undefined; attempt++) {
    try {
      child = await launch(port)
    } catch (error) {
      // Another process took the port between the probe and the launch: try another one.
      if (attempt >= 3) throw error
      port = await freePort()
    }
  }
  return {
    port,
    async start () {
      child ??= await launch(port)
    },
    async pause (ms) {
      await command(port, ['CLIENT', 'PAUSE', String(ms), 'ALL'])
    },
    async stop () {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null) return
      await new Promise(resolve => {
        running.once('exit', resolve)
        running.kill('SIGKILL')
      })
    }
  }
}

/**
 * Resolves once `condition()` holds, checking every `everyMs`; rejects after `withinMs`. For
 * states only observable by looking (a key expiring in Redis, a record reaching the emulator).
 */
export async function waitFor (condition: () => boolean | Promise<boolean>, withinMs = 5_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + withinMs
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${withinMs} ms: ${condition.toString()}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}
