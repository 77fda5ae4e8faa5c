// examples/express.ts end to end (test/project/example-express.test.ts), on Express 4.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { expressNodeArgs, useExpress4 } from '../helpers/express.js'
import { plainEnv, run } from '../helpers/processes.js'

useExpress4()

t.test('the example\'s process gets Express 4 for express', async t => {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const { code, stdout, stderr } = await run(process.execPath, [...expressNodeArgs(), '--input-type=module', '-e',
    'console.log(import.meta.resolve("express"))'], { cwd: root, env: plainEnv() })
  t.equal(code, 0, { stderr })
  t.match(stdout, /\/node_modules\/express4\//)
})

await import('./example-express.test.js')
