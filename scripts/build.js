/**
 * Builds the published package from lib/: ES modules into dist/esm, CommonJS into dist/cjs.
 *
 * Both compilations (independent, so run side by side) write into a fresh staging directory that
 * then replaces dist/ in one rename: a module deleted from lib/ is never published from an old
 * build, and a process running the package from dist/ meanwhile (an example, a test) never finds
 * it half-written or missing. dist/cjs gets its own package.json saying "commonjs": the package
 * root says "module", and without the marker Node and TypeScript would read the CommonJS output
 * and its .d.ts files as ES modules.
 */
import { spawn } from 'node:child_process'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
const dist = join(root, 'dist')
// Beside dist/ (a rename cannot cross file systems) and ignored by git like it.
const staging = join(root, 'node_modules', '.cache', 'kinde-metering-build', String(process.pid))

/** Runs tsc on one project into `outDir`; rejects with its exit code, diagnostics already printed. */
function compile (project, outDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, '-p', project, '--outDir', outDir], { cwd: root, stdio: 'inherit' })
    child.on('error', reject)
    child.on('exit', code => code === 0 ? resolve() : reject(new Error(`tsc -p ${project} exited with ${code}`)))
  })
}

await rm(staging, { recursive: true, force: true })
await mkdir(staging, { recursive: true })
const results = await Promise.allSettled([
  compile('tsconfig.build.json', join(staging, 'esm')),
  compile('tsconfig.build.cjs.json', join(staging, 'cjs'))
])
const failed = results.filter(result => result.status === 'rejected')
if (failed.length > 0) {
  for (const { reason } of failed) process.stderr.write(`build: ${reason.message}\n`)
  await rm(staging, { recursive: true, force: true })
  process.exit(1)
}
await writeFile(join(staging, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n')
await swapIn()

/** Moves dist/ aside and the new build in; tried again if another build lands in between. */
async function swapIn () {
  for (let attempt = 1; ; attempt++) {
    const aside = `${staging}.previous-${attempt}`
    await rename(dist, aside).catch(error => { if (error.code !== 'ENOENT') throw error })
    try {
      await rename(staging, dist)
      return
    } catch (error) {
      if ((error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') || attempt === 5) throw error
    } finally {
      await rm(aside, { recursive: true, force: true })
    }
  }
}
