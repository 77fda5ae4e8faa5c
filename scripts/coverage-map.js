/**
 * tap's coverage map (package.json "tap"."coverage-map"): every test file is held to full
 * coverage of the lib/ files it loads, and of nothing else. Test helpers, the examples, and the
 * built dist/ that child processes run are not the code under test.
 */
export default () => 'lib/**/*.ts'
