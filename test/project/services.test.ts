import t, { type Test } from 'tap'
import { chmodSync, copyFileSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decide, debianLike, printable, provideRedis } from '../../scripts/services.js'
import { spawn, spawnSync } from 'node:child_process'
import { redisUnavailable, startRedisServer } from '../helpers/redis-server.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const script = join(root, 'scripts/services.js')
const asRoot = process.getuid?.() === 0

/**
 * A test's directory, and in it `bin` to serve as the whole PATH: no redis-server, no apt-get,
 * unless the test adds them.
 */
function sandbox (t: Test): { dir: string, bin: string } {
  const dir = t.testdir({ bin: {} })
  const bin = join(dir, 'bin')
  symlinkSync(process.execPath, join(bin, 'node'))
  return { dir, bin }
}

/** Writes an executable shell script `name` into `dir` (a stand-in with the system's tools). */
function executable (dir: string, name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\nPATH=/usr/bin:/bin\n${body}\n`)
  chmodSync(join(dir, name), 0o755)
}

const NOBODY = 65534

/**
 * A node that user `uid` may run: this one, or, where only its owner can reach it (a node
 * installed under /root), a copy in `dir`.
 */
function nodeFor (uid: number, dir: string): string {
  if (spawnSync(process.execPath, ['--version'], { uid, gid: uid }).status === 0) return process.execPath
  const copy = join(dir, 'node-copy')
  copyFileSync(process.execPath, copy)
  chmodSync(copy, 0o755)
  return copy
}

/**
 * Runs `node scripts/services.js` as `npm test` does, in the environment `env` alone: without the
 * NODE_OPTIONS tap adds to every child (its hooks would write tap's files, as whichever user).
 */
async function services (env: NodeJS.ProcessEnv, args: string[] = [], uid?: number, node = process.execPath): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', node, script, ...args], { cwd: root, env, uid, gid: uid, signal: AbortSignal.timeout(30_000) })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', chunk => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', chunk => { stderr += chunk })
  return await new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout, stderr }))
  })
}

const lines = (text: string): string[] => text.split('\n').filter(line => line !== '')

t.test('the decision: REDIS_URL first, then redis-server on PATH, then an install where one is possible', async t => {
  const machine = { redisServer: false, root: true, aptGet: true, debianLike: true }
  t.same(decide({ ...machine, redisUrl: 'redis://127.0.0.1:6379', redisServer: true }), { use: 'url' })
  t.same(decide({ ...machine, redisUrl: '', redisServer: true }), { use: 'local' }, 'an empty REDIS_URL is unset')
  t.same(decide(machine), { use: 'install' })
  t.match(decide({ ...machine, root: false }), { use: 'none', reason: /not installed automatically here: not root\)/ })
  t.match(decide({ ...machine, aptGet: false }), { use: 'none', reason: /: no apt-get\)/ })
  t.match(decide({ redisServer: false, root: false, aptGet: false, debianLike: false }),
    { use: 'none', reason: /not Debian or Ubuntu, not root, no apt-get/ }, 'a laptop: every reason named')
})

t.test('Debian, Ubuntu and their derivatives are told from their os-release', async t => {
  t.ok(debianLike('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'))
  t.ok(debianLike('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'))
  t.ok(debianLike('NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'))
  t.notOk(debianLike('NAME="Fedora Linux"\nID=fedora\n'))
  t.notOk(debianLike('NAME="Alpine Linux"\nID=alpine\nPRETTY_NAME="not debian"\n'), 'only ID and ID_LIKE count')
  t.notOk(debianLike(''), 'no os-release (macOS)')
})

t.test('no redis-server, no apt-get, no REDIS_URL: one line saying what to install, exit 1', async t => {
  const { code, stdout, stderr } = await services({ PATH: sandbox(t).bin })
  t.equal(code, 1)
  t.equal(stdout, '')
  t.equal(lines(stderr).length, 1, 'one line', { stderr })
  t.match(stderr, /^kinde-metering tests need Redis: redis-server is not on PATH and REDIS_URL is not set/)
  t.match(stderr, /apt-get install redis-server/)
  t.match(stderr, /brew install redis/)
  t.match(stderr, /REDIS_URL=redis:\/\/127\.0\.0\.1:6379/)
  t.match(stderr, /no apt-get/)
})

t.test('not root: apt-get is not tried, and the line says so', async t => {
  const { dir, bin } = sandbox(t)
  chmodSync(dir, 0o777) // so that an apt-get run by nobody would leave its mark
  const called = join(dir, 'apt-get-called')
  executable(bin, 'apt-get', `touch ${called}`)
  // As root, run as nobody: a real non-root process, as on a developer's laptop.
  const { code, stderr } = await services({ PATH: bin }, [], asRoot ? NOBODY : undefined, asRoot ? nodeFor(NOBODY, dir) : process.execPath)
  t.equal(code, 1)
  t.equal(lines(stderr).length, 1, 'one line', { stderr })
  t.match(stderr, /not root/)
  t.match(stderr, /apt-get install redis-server/)
  t.notOk(existsSync(called), 'apt-get never ran')
})

t.test('for the bench (--optional), a missing Redis is said on one line and the exit is 0', async t => {
  const { code, stdout, stderr } = await services({ PATH: sandbox(t).bin }, ['--optional'])
  t.equal(code, 0)
  t.equal(stdout, '')
  t.equal(lines(stderr).length, 1)
  t.match(stderr, /^kinde-metering: no Redis, the fleet benchmark will not run: redis-server is not on PATH/)
})

t.test('redis-server on PATH: nothing to do, nothing said', async t => {
  const { bin } = sandbox(t)
  executable(bin, 'redis-server', 'exit 0')
  t.same(await services({ PATH: bin }), { code: 0, stdout: '', stderr: '' })
})

t.test('REDIS_URL answering: used, nothing said; not answering: one line without its password, exit 1', async t => {
  const redis = await startRedisServer()
  t.teardown(() => redis.stop())
  const { bin } = sandbox(t)
  t.same(await services({ PATH: bin, REDIS_URL: `redis://127.0.0.1:${redis.port}` }), { code: 0, stdout: '', stderr: '' })

  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const { port } = closed.address() as { port: number }
  await new Promise(resolve => closed.close(resolve))
  const { code, stderr } = await services({ PATH: bin, REDIS_URL: `redis://admin:s3cret-pw@127.0.0.1:${port}/2` })
  t.equal(code, 1)
  t.equal(lines(stderr).length, 1, { stderr })
  t.match(stderr, `REDIS_URL=redis://127.0.0.1:${port}/2 does not answer`)
  t.notMatch(stderr, /s3cret-pw|admin/, 'the credentials are not printed')
  t.equal(printable('not a url'), '(REDIS_URL is not a URL)')
})

t.test('as root on Debian with apt-get: redis-server is installed, said on one line while it happens', async t => {
  const { dir, bin } = sandbox(t)
  const calls = join(dir, 'apt-get-calls')
  // apt-get as it behaves: `update`, then `install` puts redis-server on PATH.
  executable(bin, 'apt-get', `echo "$DEBIAN_FRONTEND $*" >> ${calls}\n[ "$1" = install ] && printf '#!/bin/sh\\n' > ${bin}/redis-server && chmod +x ${bin}/redis-server\nexit 0`)
  const osRelease = join(dir, 'os-release')
  writeFileSync(osRelease, 'ID=ubuntu\nID_LIKE=debian\n')
  const said: string[] = []
  const result = await provideRedis({ env: { PATH: bin }, osReleaseFile: osRelease, root: true, out: line => said.push(line) })
  t.same(result, { ok: true })
  t.same(lines(readFileSync(calls, 'utf8')), ['noninteractive update -qq', 'noninteractive install -y -qq redis-server'])
  t.equal(said.length, 1)
  t.match(said[0], /^kinde-metering: installing redis-server with apt-get, for the fleet-mode tests \(set REDIS_URL/)
})

t.test('an install that fails says why on one line', async t => {
  const { dir, bin } = sandbox(t)
  executable(bin, 'apt-get', '[ "$1" = install ] && { echo "Reading package lists..." >&2; echo "E: Unable to locate package redis-server" >&2; exit 100; }\nexit 0')
  const osRelease = join(dir, 'os-release')
  writeFileSync(osRelease, 'ID=debian\n')
  const result = await provideRedis({ env: { PATH: bin }, osReleaseFile: osRelease, root: true, out: () => {} })
  t.same(result, { ok: false, reason: 'apt-get install -y -qq redis-server failed: E: Unable to locate package redis-server' })

  executable(bin, 'apt-get', 'exit 0') // claims success, installs nothing
  t.same(await provideRedis({ env: { PATH: bin }, osReleaseFile: osRelease, root: true, out: () => {} }),
    { ok: false, reason: 'apt-get installed redis-server, but it is not on PATH' })
})

t.test('the tests\' own helper names the way out when redis-server is missing', async t => {
  const { bin } = sandbox(t)
  t.match(redisUnavailable({ PATH: bin }), /redis-server is not on PATH and REDIS_URL is not set/)
  t.equal(redisUnavailable({ PATH: bin, REDIS_URL: 'redis://127.0.0.1:6379' }), undefined)
  executable(bin, 'redis-server', 'exit 0')
  t.equal(redisUnavailable({ PATH: bin }), undefined)
})
