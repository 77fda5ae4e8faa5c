/**
 * Mutation testing of the core (`npm run mutation`; not part of `npm test` or CI): Stryker mutates
 * lib/core (any subfolder too) and reruns, for each mutant, only the test files that covered it
 * (the tap runner counts a test file as one test). Reports go to reports/mutation/.
 * One file: `npx stryker run --mutate lib/core/usage/decimal.ts`.
 */
export default {
  // The tap runner, trying the test written for the mutated file first (scripts/mutation-runner.mjs).
  testRunner: 'tap-ordered',
  plugins: ['@stryker-mutator/*', './scripts/mutation-runner.mjs'],
  tap: {
    // The tests of the core and of what drives it on the request path. Left out, so that a full run
    // takes about an hour on 2 cores rather than several: test/project/ (the
    // package as a whole: built dist/, types, README, bench; no mutant loads there, and Stryker's
    // sandbox has no dist/), test/cli/ and test/redis/ (other entry points; each covers most of the
    // core, so every surviving core mutant would rerun them), the two crash tests (they run lib/ in
    // SIGKILLed child processes Stryker never sees) and the two fault suites (29 s and 7 s a run:
    // soak tests over what the delivery tests pin one case at a time). Scores are therefore lower
    // bounds. test/core/report/errors.test.ts checks the error brand from source, as
    // errors-brand.test.ts does from dist/.
    testFiles: [
      'test/{adapters,doctor,testing}/**/*.test.ts',
      'test/core/**/!(errors-brand|journal-crash|absolute-journal-crash|fault-shutdown|fault-suite).test.ts'
    ],
    nodeArgs: ['--import', 'tsx', '-r', './scripts/mutation-sandbox.cjs', '-r', '{{hookFile}}', '{{testFile}}'],
    forceBail: true
  },
  mutate: ['lib/core/**/*.ts'],
  // Mutants that do not compile are discarded before any test runs.
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.stryker.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  // A mutant of module-level code (a constant computed at load) is covered by every test file and
  // would rerun them all; such mutants are left out of the score instead.
  ignoreStatic: true,
  // Later runs retest only mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  // Stryker gives half to TypeScript checkers, half to test runners, and the checkers' share to
  // runners once every mutant is checked: two, then four runners on two cores, as tests wait on
  // sockets and timers as much as they compute. A test may take three times its
  // dry-run time before it counts as a timeout (killed): only a mutant that hangs a test gets there.
  concurrency: 4,
  timeoutFactor: 3,
  timeoutMS: 15_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  ignorePatterns: ['dist', 'coverage', '.tap', 'reports', 'bench/results'],
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp'
}
