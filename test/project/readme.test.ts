/**
 * README cannot drift from the types: every ```ts block of README.md is type-checked as its own
 * module, as a user's project would check it (strict, NodeNext), against the built declarations
 * (`kinde-metering` resolved through the package's exports to dist/). A block may use the
 * placeholders of test/project/readme/stubs.d.ts; CONTRIBUTING.md describes the conventions.
 * The quick start then runs as README says, against the bundled emulator. `npm run build` must
 * have run (npm test does).
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TSC, run } from '../helpers/processes.js'
import { root } from '../helpers/packed.js'
import { readmeBlocks, sourceFile } from '../helpers/readme-blocks.js'

/** One tsc diagnostic, placed in README. */
interface Diagnostic { file: string, readmeLine: number, code: string, text: string }

/** TypeScript's codes for a name or module it cannot find: a mistake that fails for the wrong reason. */
const NOT_FOUND = new Set(['TS2304', 'TS2305', 'TS2307', 'TS2552', 'TS18004'])

t.test('every TypeScript block of README compiles against the built package', async t => {
  t.ok(existsSync(join(root, 'dist/esm/index.d.ts')), 'dist/ is built (npm test runs `npm run build` first)')
  const blocks = readmeBlocks(await readFile(join(root, 'README.md'), 'utf8'))
  t.ok(blocks.length >= 10, 'README holds its snippets')

  // Inside the repository, so that `kinde-metering` resolves to this package (its self-reference)
  // and what a snippet imports to this repository's node_modules.
  const dir = await mkdtemp(join(root, '.readme-check-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const files = blocks.map(block => ({ block, ...sourceFile(block) }))
  t.same(files.filter((file, index) => files.findIndex(other => other.name === file.name) !== index).map(file => `README.md:${file.block.line}: ${file.name}`), [],
    'no two blocks are written to one file name')
  await Promise.all(files.map(file => writeFile(join(dir, file.name), file.text)))
  await copyFile(join(root, 'test/project/readme/stubs.d.ts'), join(dir, 'stubs.d.ts'))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: ['node'], strict: true, noEmit: true, skipLibCheck: true },
    include: ['*.ts', '*.cts']
  }))
  const checked = await run(process.execPath, [TSC, '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: dir })

  // A diagnostic's explanation continues on indented lines.
  const diagnostics: Diagnostic[] = []
  for (const line of checked.stdout.split('\n')) {
    const head = /^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(line)
    if (head !== null) {
      const block = files.find(file => file.name === head[1])?.block
      diagnostics.push({ file: head[1], readmeLine: (block?.line ?? 0) + Number(head[2]) - 1, code: head[3], text: head[4] })
    } else if (line.trim() !== '' && diagnostics.length > 0) diagnostics[diagnostics.length - 1].text += ' ' + line.trim()
  }
  const shown = (list: Diagnostic[]): string[] => list.map(d => `README.md:${d.readmeLine}: ${d.code} ${d.text}`)

  for (const { block, name, mustFail } of files) {
    const own = diagnostics.filter(d => d.file === name)
    if (block.mode !== 'errors') {
      t.same(shown(own), [], `README's block at line ${block.line} compiles`)
      continue
    }
    t.same(mustFail.filter(line => !own.some(d => d.readmeLine === line)), [], `every line of README's mistakes at line ${block.line} fails to compile`)
    t.same(shown(own.filter(d => NOT_FOUND.has(d.code) || !mustFail.includes(d.readmeLine))), [],
      `the mistakes at line ${block.line} fail for what they show, not for a missing name or import`)
  }
  t.same(shown(diagnostics.filter(d => !files.some(file => file.name === d.file))), [], 'no diagnostics outside the blocks')
  t.equal(checked.code === 0, diagnostics.length === 0, 'tsc exits 0 exactly when there is no diagnostic')

  // The quick start as a user runs it: try.ts starts the emulator and imports server.ts.
  t.ok(files.some(file => file.name === 'server.ts') && files.some(file => file.name === 'try.ts'), 'README holds the quick start, server.ts and try.ts')
  const tried = await run(process.execPath, ['--import', 'tsx', 'try.ts'], { cwd: dir })
  t.equal(tried.code, 0, 'npx tsx try.ts succeeds', { stderr: tried.stderr })
  const printed = tried.stdout.split('\n').filter(line => !line.startsWith('{')) // the app's own JSON log lines aside
  t.same(printed, ['GET /search 200', 'GET /search 200', 'GET /search 200', 'Kinde recorded 3 searches for org_acme', ''],
    'three authenticated requests, each metered, reach Kinde as 3 searches')
})
