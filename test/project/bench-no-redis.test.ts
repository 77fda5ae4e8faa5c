import t from 'tap'
import { symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { plainEnv, run } from '../helpers/processes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('without Redis the bench reports its fleet section as not run, says why, and prints the rest', async t => {
  const dir = t.testdir({ bin: {}, out: {} })
  symlinkSync(process.execPath, join(dir, 'bin', 'node'))
  const env = plainEnv({ PATH: join(dir, 'bin') })
  delete env.REDIS_URL
  const { code, stdout, stderr } = await run(process.execPath,
    ['--import', 'tsx', 'bench/run.ts', '--quick', '--only', 'calls,fleet', '--out', join(dir, 'out')], { cwd: root, env })
  t.equal(code, 0, 'the bench exits 0', { stderr })
  t.match(stdout, /### Kinde calls per 1,000,000 requests\n/)
  t.match(stdout, /### fleet\n\nnot run: redis-server is not on PATH and REDIS_URL is not set/)
  t.notMatch(stderr, /ENOENT|Unhandled/)
})
