/**
 * The order in which a mutation run tries a mutant's covering test files. Stryker stops at the
 * first file that fails and tries them in the order of its initial run, which puts the adapter
 * tests first for nearly every mutant of the core; the test written for the mutated file, which
 * kills most of its mutants, often came last.
 */
import path from 'node:path'

/**
 * `testFiles` ordered for a mutant of `mutantFile`: first the test mirroring it
 * (lib/core/x/y.ts: test/core/x/y.test.ts), then the other tests of that folder, then the rest of
 * test/core, then the others; each group in its given order.
 * @param {readonly string[]} testFiles test file paths, relative to `root` or absolute
 * @param {string} mutantFile the mutated file's path, absolute or relative to `root`
 * @param {string} root the project folder (Stryker's sandbox)
 * @returns {string[]}
 */
export function orderTests (testFiles, mutantFile, root) {
  const source = path.relative(root, path.resolve(root, mutantFile)).split(path.sep).join('/')
  const mirror = source.replace(/^lib\//, 'test/').replace(/\.ts$/, '.test.ts')
  const folder = path.posix.dirname(mirror)
  const rank = file => {
    const test = path.relative(root, path.resolve(root, file)).split(path.sep).join('/')
    if (test === mirror) return 0
    if (path.posix.dirname(test) === folder) return 1
    return test.startsWith('test/core/') ? 2 : 3
  }
  return testFiles
    .map((file, at) => ({ file, at, rank: rank(file) }))
    .sort((a, b) => a.rank - b.rank || a.at - b.at)
    .map(({ file }) => file)
}
