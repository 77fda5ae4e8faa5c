/**
 * The package as users get it: `npm pack` of this repository, installed from the tarball into a
 * new project that holds nothing else but the packages asked for (no dev dependencies, no
 * repository around it). `npm run build` must have run (npm test does).
 */
import type { Test } from 'tap'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, type Finished } from './processes.js'

/** This repository. */
export const root = fileURLToPath(new URL('../..', import.meta.url))
export const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** A project with the tarball installed. */
export interface Installed {
  /** The project directory; `node_modules/kinde-metering` is the installed package. */
  app: string
  /** Paths of the files in the tarball. */
  files: string[]
}

/** Asserts that a step exited 0, showing its output when it did not. */
export function expectSuccess (t: Test, step: string, result: Finished): void {
  t.equal(result.code, 0, `${step} succeeds`, { stdout: result.stdout, stderr: result.stderr })
}

/** Packs this repository and installs the tarball, plus `dependencies`, into a new project removed at teardown. */
export async function packAndInstall (t: Test, dependencies: string[] = []): Promise<Installed> {
  const dir = await mkdtemp(join(tmpdir(), 'kinde-metering-pack-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // --ignore-scripts: prepack would rebuild dist/, which the rest of the suite is running.
  const packed = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root })
  expectSuccess(t, 'npm pack', packed)
  const [{ filename, files }] = JSON.parse(packed.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  const app = join(dir, 'app')
  await mkdir(app)
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
  const installed = await run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', join(dir, filename), ...dependencies],
    { cwd: app, timeoutMs: 50_000 })
  expectSuccess(t, `npm install of the tarball${dependencies.length > 0 ? ` and ${dependencies.join(', ')}` : ''}`, installed)
  return { app, files: files.map(file => file.path) }
}
