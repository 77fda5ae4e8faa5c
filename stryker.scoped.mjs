/**
 * stryker.config.mjs with the test files and the report folder chosen per run, for measuring a
 * few files at a time with only the tests that exercise them (a whole-core run takes hours on a
 * shared 2-core machine):
 *
 *   MUT_NAME=config MUT_TESTS=test/core/config/options.test.ts,test/adapters/fastify.test.ts \
 *     npx stryker run stryker.scoped.mjs --mutate 'lib/core/config/*.ts'
 *
 * writes reports/mutation-config/ (incremental file included). A score measured with fewer
 * tests is a lower bound.
 */
import base from './stryker.config.mjs'

const tests = process.env.MUT_TESTS ? process.env.MUT_TESTS.split(',') : base.tap.testFiles
const name = process.env.MUT_NAME
const named = name === undefined
  ? {}
  : {
      incrementalFile: `reports/mutation-${name}/stryker-incremental.json`,
      htmlReporter: { fileName: `reports/mutation-${name}/mutation.html` },
      jsonReporter: { fileName: `reports/mutation-${name}/mutation.json` }
    }
export default { ...base, ...named, tap: { ...base.tap, testFiles: tests } }
