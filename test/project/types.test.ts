/**
 * The published types guide users: the files in test/project/types/ use the built declarations as users
 * import them, and must type-check (every `@ts-expect-error` line failing as it should) under the
 * two resolutions TypeScript projects use: NodeNext (ES modules and CommonJS) and Bundler.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TSC, run } from '../helpers/processes.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.before(() => {
  if (!existsSync(new URL('../../dist/esm/index.d.ts', import.meta.url))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
  }
})

const projects = { NodeNext: 'test/project/types/tsconfig.json', Bundler: 'test/project/types/tsconfig.bundler.json' }
// Both checks start at once: each is a few seconds of one core.
const checks = Object.entries(projects).map(([resolution, project]) =>
  [resolution, run(process.execPath, [TSC, '--noEmit', '-p', project], { cwd: root })] as const)

for (const [resolution, check] of checks) {
  t.test(`type tests compile as intended under moduleResolution ${resolution}`, async t => {
    const { code, stdout, stderr } = await check
    t.equal(stdout + stderr, '', 'no diagnostics')
    t.equal(code, 0)
  })
}
