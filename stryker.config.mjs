/**
 * Mutation testing of the core (`npm run mutation`; not part of `npm test` or CI): Stryker mutates
 * lib/core (any subfolder too) and reruns, for each mutant, only the test files that covered it
 * (the tap runner counts a test file as one test). Reports go to reports/mutation/.
 * One file: `npx stryker run --mutate lib/core/usage/decimal.ts`.
 */
export default {
  testRunner: 'tap',
  tap: {
    // test/project/ tests the package as a whole (built dist/, types, README, bench): no mutant loads
    // there. Nor in the three tests that run the built dist/ (the packed CLI, replay's command line,
    // the CommonJS/ESM error brand): Stryker's sandbox has no dist/, so they would fail the dry run;
    // test/core/report/errors.test.ts checks the brand from source. Nor the two crash tests: they
    // run lib/ in child processes they SIGKILL, whose coverage Stryker never sees, for 7 s each.
    testFiles: ['test/!(project)/**/!(cli-tarball|replay|errors-brand|journal-crash|absolute-journal-crash).test.ts'],
    nodeArgs: ['--import', 'tsx', '-r', '{{hookFile}}', '{{testFile}}'],
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
  // Two cores: one test process per core; a mutant that hangs a test is a timeout (killed).
  concurrency: 2,
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  ignorePatterns: ['dist', 'coverage', '.tap', 'reports', 'bench/results'],
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp'
}
