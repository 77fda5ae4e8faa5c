/**
 * Builds the published package from lib/: ES modules into dist/esm, CommonJS into dist/cjs.
 *
 * dist/ is emptied first so a module deleted from lib/ is never published from an old build.
 * The two compilations are independent and run side by side. dist/cjs gets its own
 * package.json saying "commonjs": the package root says "module", and without the marker Node
 * and TypeScript would read the CommonJS output and its .d.ts files as ES modules.
 */
import { spawn } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

/** Runs tsc on one project; rejects with its exit code, its diagnostics already on stdout. */
function compile (project) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' })
    child.on('error', reject)
    child.on('exit', code => code === 0 ? resolve() : reject(new Error(`tsc -p ${project} exited with ${code}`)))
  })
}

await rm(join(root, 'dist'), { recursive: true, force: true })
const results = await Promise.allSettled([compile('tsconfig.build.json'), compile('tsconfig.build.cjs.json')])
const failed = results.filter(result => result.status === 'rejected')
if (failed.length > 0) {
  for (const { reason } of failed) process.stderr.write(`build: ${reason.message}\n`)
  process.exit(1)
}
await mkdir(join(root, 'dist/cjs'), { recursive: true })
await writeFile(join(root, 'dist/cjs/package.json'), JSON.stringify({ type: 'commonjs' }, null, 2) + '\n')
