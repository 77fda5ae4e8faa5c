/**
 * A real redis-server for tests and benchmarks: started on a free 127.0.0.1 port with persistence
 * off, stopped (and restartable on the same port, to play an outage) on demand.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

/** A running (or stopped) redis-server. */
export interface RedisServer {
  /** Port on 127.0.0.1; kept across {@link RedisServer.stop} and {@link RedisServer.start}. */
  readonly port: number
  /** Starts the server again on the same port (empty: nothing is persisted). */
  start (): Promise<void>
  /** Stops the server (SIGKILL, as a crash) and waits for it to exit; idempotent. */
  stop (): Promise<void>
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
  })
  return child
}

/** Starts a redis-server on a free port. Call `stop()` in teardown. */
export async function startRedisServer (): Promise<RedisServer> {
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
