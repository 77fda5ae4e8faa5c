/**
 * The tests' Redis when `REDIS_URL` names a running one: each {@link RedisServer} is a database of
 * it that was empty, reached through a loopback proxy that can play the outages a test's own
 * redis-server plays (stop, start empty, stall), without touching the user's server or data.
 *
 * A database is claimed with a marker key holding a lease deadline, by a script that only claims
 * an empty database or one whose marker's lease ran out (a test process that died): a database
 * holding anything else is someone's data and is never written to. Claims are renewed while the
 * process runs, and flushed (left empty, as found) when it ends. A restart also flushes the
 * server's script cache, as a real restart does: the one thing shared with the user's clients.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { Redis } from 'ioredis'
import type { RedisServer } from './redis-server.js'

const MARKER = 'kinde-metering:test-claim'
const LEASE_MS = 60_000
const RENEW_MS = 10_000

// KEYS[1] the marker; ARGV[1] the lease in ms. 1 when the database is now this claimant's.
const CLAIM = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local held = redis.call('GET', KEYS[1])
if held then
  if tonumber(held) > ms then return 0 end
elseif redis.call('DBSIZE') > 0 then
  return 0
end
redis.call('FLUSHDB')
redis.call('SET', KEYS[1], ms + tonumber(ARGV[1]))
return 1`

// Empties a claimed database and renews its claim (a restarted server holds nothing).
const RENEW = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ARGV[2] == '1' then redis.call('FLUSHDB') end
redis.call('SET', KEYS[1], ms + tonumber(ARGV[1]))
return 1`

const claimed = new Set<number>()
// Claimed databases whose server was stopped: the next test of this process takes one (emptied)
// before claiming another, so a file of many tests holds as many databases as it runs at once.
const idle: number[] = []
// Which server uses each claimed database now.
const users = new Map<number, object>()
let renewer: NodeJS.Timeout | undefined
let released = false

/** Runs `work` on a short-lived connection to `url`'s database `db`. */
async function onDatabase<T> (url: string, db: number, work: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, { db, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return await work(client)
  } finally {
    client.disconnect()
  }
}

/** Claims an empty database of the Redis at `url`, highest number first (0 is never taken). */
async function claimDatabase (url: string): Promise<number> {
  const databases = await onDatabase(url, 0, async client => {
    const reply = await client.config('GET', 'databases').catch(() => []) as string[]
    return Number(reply[1] ?? 16)
  })
  for (let db = databases - 1; db >= 1; db--) {
    if (claimed.has(db)) continue
    const won = await onDatabase(url, db, async client => await client.eval(CLAIM, 1, MARKER, LEASE_MS))
    if (won === 1) {
      claimed.add(db)
      keepClaims(url)
      return db
    }
  }
  throw new Error(`REDIS_URL: no empty database left for the tests (databases 1 to ${databases - 1} hold data or other test runs)`)
}

/** Renews this process's claims while it runs; flushes them as it ends. */
function keepClaims (url: string): void {
  if (renewer !== undefined) return
  renewer = setInterval(() => {
    for (const db of claimed) void onDatabase(url, db, async client => await client.eval(RENEW, 1, MARKER, LEASE_MS, '0')).catch(() => {})
  }, RENEW_MS).unref()
  process.once('beforeExit', () => {
    if (released) return
    released = true
    clearInterval(renewer)
    void Promise.all([...claimed].map(async db => await onDatabase(url, db, async client => await client.flushdb()).catch(() => {})))
  })
}

/**
 * Connects to the Redis of `url` and selects `db` (authenticating first when the URL has a
 * password); `onReady` once its answers are in, the client then piped what the server says.
 */
function upstream (url: string, db: number, client: Socket, onReady: () => void): Socket {
  const target = new URL(url)
  const port = Number(target.port === '' ? 6379 : target.port)
  const host = target.hostname.replace(/^\[|\]$/g, '')
  // No Nagle delay on either hop, as ioredis has none on its own: leases are timed in milliseconds.
  const socket = (target.protocol === 'rediss:' ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port })).setNoDelay(true)
  const command = (...args: string[]): string => `*${args.length}\r\n${args.map(arg => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`
  const password = decodeURIComponent(target.password)
  const user = decodeURIComponent(target.username)
  const auth = password === '' ? '' : user === '' ? command('AUTH', password) : command('AUTH', user, password)
  socket.write(auth + command('SELECT', String(db)))
  let expected = password === '' ? 1 : 2
  let answers = ''
  const onHandshake = (chunk: Buffer): void => {
    answers += chunk.toString('latin1')
    for (let end = answers.indexOf('\r\n'); expected > 0 && end !== -1; end = answers.indexOf('\r\n')) {
      if (answers.startsWith('-')) {
        client.destroy()
        socket.destroy()
        return
      }
      answers = answers.slice(end + 2)
      expected--
    }
    if (expected > 0) return
    socket.off('data', onHandshake)
    if (answers !== '') client.write(Buffer.from(answers, 'latin1'))
    socket.pipe(client)
    onReady()
  }
  socket.on('data', onHandshake)
  return socket
}

/** A database of the Redis at `url`, behind a proxy on a free 127.0.0.1 port. */
export async function startSharedRedis (url: string): Promise<RedisServer> {
  const reused = idle.pop()
  if (reused !== undefined) await onDatabase(url, reused, async client => await client.eval(RENEW, 1, MARKER, LEASE_MS, '1'))
  const db = reused ?? await claimDatabase(url)
  const me = {}
  users.set(db, me)
  const sockets = new Set<Socket>()
  const forwarders = new Set<() => void>()
  let stalledUntil = 0
  const proxy: Server = createServer({ noDelay: true }, client => {
    // What the client sends waits here until the database is selected, and while stalled.
    const held: Buffer[] = []
    let ready = false
    const forward = (): void => {
      if (ready && Date.now() >= stalledUntil) for (const chunk of held.splice(0)) server.write(chunk)
    }
    const server = upstream(url, db, client, () => {
      ready = true
      forward()
    })
    sockets.add(client).add(server)
    forwarders.add(forward)
    client.on('data', chunk => {
      held.push(chunk)
      forward()
    })
    const close = (): void => {
      forwarders.delete(forward)
      sockets.delete(client)
      sockets.delete(server)
      client.destroy()
      server.destroy()
    }
    client.on('close', close).on('error', close)
    server.on('close', close).on('error', close)
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  const { port } = proxy.address() as { port: number }
  let listening = true
  return {
    port,
    async start () {
      if (listening) return
      if (users.get(db) !== me) throw new Error(`this test Redis was stopped and its database (${db}) handed to another test`)
      idle.splice(idle.indexOf(db), 1)
      await onDatabase(url, db, async client => {
        await client.eval(RENEW, 1, MARKER, LEASE_MS, '1')
        // A restarted server has forgotten its scripts too. The cache is the server's, but only a
        // cache: every client reloads what it misses (NOSCRIPT), as after a real restart.
        await client.script('FLUSH')
      })
      await new Promise<void>((resolve, reject) => proxy.once('error', reject).listen(port, '127.0.0.1', () => {
        proxy.off('error', reject)
        resolve()
      }))
      listening = true
    },
    async stop () {
      if (!listening) return
      listening = false
      for (const socket of sockets) socket.destroy()
      await new Promise(resolve => proxy.close(resolve))
      idle.push(db)
    },
    async pause (ms: number) {
      const until = stalledUntil = Date.now() + ms
      setTimeout(() => {
        if (stalledUntil === until) stalledUntil = 0
        for (const forward of forwarders) forward()
      }, ms).unref()
    }
  }
}
