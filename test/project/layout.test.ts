/**
 * The shape of lib/ a reader relies on: no import cycle (type-only imports included), each
 * folder's concern stated in one line at the top of each of its files, and no file so long it
 * holds more than one job.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { importCycles, importGraph, sourceFiles } from '../helpers/import-graph.js'

const lib = join(dirname(fileURLToPath(import.meta.url)), '../..', 'lib')
/** The emulator's folder states its own concerns (it is the test oracle, kept apart from the package). */
const ownConvention = /^testing\//
const MAX_LINES = 300

t.test('lib/ has no import cycle, type-only imports included', async t => {
  t.same(importCycles(importGraph(lib)).map(cycle => cycle.join(' → ')), [])
})

t.test('the cycle check finds a cycle, type-only or not', async t => {
  const graph = new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts']]])
  t.same(importCycles(graph), [['a.ts', 'b.ts', 'c.ts', 'a.ts']])
})

t.test('every file opens with its folder\'s one-line concern, the same line across the folder', async t => {
  const concerns = new Map<string, Set<string>>()
  for (const file of sourceFiles(lib)) {
    const name = relative(lib, file)
    if (ownConvention.test(name)) continue
    const lines = readFileSync(file, 'utf8').split('\n')
    const line = lines[0].startsWith('#!') ? lines[1] : lines[0]
    const folder = `lib/${dirname(name) === '.' ? '' : dirname(name) + '/'}`
    t.match(line, new RegExp(`^// ${folder}: \\S.*\\.$`), name)
    concerns.set(folder, (concerns.get(folder) ?? new Set()).add(line))
  }
  for (const [folder, lines] of concerns) t.equal(lines.size, 1, `${folder} states one concern`)
})

t.test(`no file in lib/ is over ${MAX_LINES} lines`, async t => {
  const long = sourceFiles(lib)
    .map(file => ({ file: relative(lib, file), lines: readFileSync(file, 'utf8').split('\n').length - 1 }))
    .filter(({ lines }) => lines > MAX_LINES)
  t.same(long, [])
})

t.test('test/ follows lib/: each test folder is named after the lib/ folder it tests', async t => {
  const root = join(lib, '..')
  const folders = sourceFiles(join(root, 'test')).filter(name => name.endsWith('.test.ts')).map(name => dirname(relative(join(root, 'test'), name)))
  for (const folder of new Set(folders)) {
    // test/project/ tests the package as a whole (build, pack, types, README, examples, bench).
    if (folder === 'project') continue
    t.ok(existsSync(join(lib, folder)) || existsSync(join(lib, `${folder}.ts`)), `test/${folder}/ names lib/${folder}`)
  }
  t.notOk(folders.includes('.'), 'no test file lies loose in test/')
})
