/**
 * Provides the services the test suite and the bench need before either starts: a Redis, for the
 * fleet-mode tests (kinde-metering/redis against a real server).
 *
 * - `REDIS_URL` set: that running Redis is used (checked to answer here); the tests work in
 *   databases of it that they find empty and leave empty (test/helpers/shared-redis.ts).
 * - else `redis-server` on PATH: the tests start their own on free loopback ports.
 * - else on Debian or Ubuntu, as root, with apt-get: `redis-server` is installed, said on one line.
 * - else: one line naming what to install or which variable to set, and exit 1, before anything
 *   else runs. No test is skipped instead.
 *
 * `node scripts/services.js` is what `npm test` and `.ci/run` run first. With `--optional` (as
 * `npm run bench` runs it) a Redis that cannot be had is said on one line and the exit is 0: the
 * bench then reports its fleet section as not run.
 */
import { spawnSync } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** What to install, or which variable to set, where Redis can be neither found nor installed. */
export const REMEDY = 'install redis-server (apt-get install redis-server, or brew install redis) or set REDIS_URL to a running Redis (e.g. REDIS_URL=redis://127.0.0.1:6379)'

/** Whether `command` is an executable file in one of the directories of `path` (a PATH value). */
export function onPath (command, path = process.env.PATH ?? '') {
  return path.split(delimiter).filter(Boolean).some(dir => {
    try {
      accessSync(join(dir, command), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** Whether an os-release file's text names Debian or Ubuntu (or a distribution derived from one). */
export function debianLike (osRelease) {
  return /^(ID|ID_LIKE)="?[^\n]*\b(debian|ubuntu)\b/m.test(osRelease)
}

/**
 * What to do about Redis, from the facts of this machine.
 * @param {{ redisUrl?: string, redisServer: boolean, root: boolean, aptGet: boolean, debianLike: boolean }} facts
 * @returns {{ use: 'url' | 'local' | 'install' } | { use: 'none', reason: string }}
 */
export function decide (facts) {
  if (facts.redisUrl !== undefined && facts.redisUrl !== '') return { use: 'url' }
  if (facts.redisServer) return { use: 'local' }
  if (facts.root && facts.aptGet && facts.debianLike) return { use: 'install' }
  const why = [
    !facts.debianLike && 'not Debian or Ubuntu',
    !facts.root && 'not root',
    !facts.aptGet && 'no apt-get'
  ].filter(Boolean).join(', ')
  return { use: 'none', reason: `redis-server is not on PATH and REDIS_URL is not set (not installed automatically here: ${why})` }
}

/** The facts `decide` needs, read from `env` and this machine. */
export function facts (env = process.env, osReleaseFile = '/etc/os-release', root = process.getuid?.() === 0) {
  let osRelease = ''
  try {
    osRelease = readFileSync(osReleaseFile, 'utf8')
  } catch {}
  return {
    redisUrl: env.REDIS_URL,
    redisServer: onPath('redis-server', env.PATH),
    root,
    aptGet: onPath('apt-get', env.PATH),
    debianLike: debianLike(osRelease)
  }
}

/** A URL fit to print: the password (and user) left out. */
export function printable (url) {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.href
  } catch {
    return '(REDIS_URL is not a URL)'
  }
}

/** Runs apt-get with `args`, quietly; returns why it failed (its last line on stderr), or undefined. */
function aptGet (args, env) {
  const result = spawnSync('apt-get', args, {
    env: { ...env, DEBIAN_FRONTEND: 'noninteractive' },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8'
  })
  if (result.status === 0) return undefined
  const last = (result.stderr ?? '').trim().split('\n').pop() || result.error?.message || `exit ${String(result.status)}`
  return `apt-get ${args.join(' ')} failed: ${last}`
}

/** Checks that the Redis at `url` answers a PING; resolves to why not, or undefined. */
async function pingUrl (url) {
  const { Redis } = await import('ioredis')
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return undefined
  } catch (error) {
    return `REDIS_URL=${printable(url)} does not answer: ${error.message}`
  } finally {
    client.disconnect()
  }
}

/**
 * Finds or installs Redis. Writes at most one line to `out` (an install about to happen) and
 * resolves to `{ ok: true }` or `{ ok: false, reason }` (one line, no secret in it).
 */
export async function provideRedis ({ env = process.env, osReleaseFile = '/etc/os-release', root = process.getuid?.() === 0, out = line => process.stderr.write(`${line}\n`) } = {}) {
  const decision = decide(facts(env, osReleaseFile, root))
  if (decision.use === 'url') {
    const reason = await pingUrl(env.REDIS_URL)
    return reason === undefined ? { ok: true } : { ok: false, reason }
  }
  if (decision.use === 'local') return { ok: true }
  if (decision.use === 'none') return { ok: false, reason: decision.reason }
  out('kinde-metering: installing redis-server with apt-get, for the fleet-mode tests (set REDIS_URL to use a running Redis instead)...')
  const failed = aptGet(['update', '-qq'], env) ?? aptGet(['install', '-y', '-qq', 'redis-server'], env)
  if (failed !== undefined) return { ok: false, reason: failed }
  if (!onPath('redis-server', env.PATH)) return { ok: false, reason: 'apt-get installed redis-server, but it is not on PATH' }
  return { ok: true }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const optional = process.argv.includes('--optional')
  const result = await provideRedis()
  if (!result.ok) {
    if (optional) {
      process.stderr.write(`kinde-metering: no Redis, the fleet benchmark will not run: ${result.reason}\n`)
    } else {
      process.stderr.write(`kinde-metering tests need Redis: ${result.reason}; ${REMEDY}.\n`)
      process.exitCode = 1
    }
  }
}
