/**
 * Stryker's tap runner, trying each mutant's covering test files in the order of
 * scripts/mutation-order.mjs (the mirroring test first) rather than that of the initial run.
 * Registered in stryker.config.mjs as the test runner `tap-ordered`; it takes the `tap` options.
 */
import { commonTokens, declareFactoryPlugin, PluginKind, tokens } from '@stryker-mutator/api/plugin'
import { createTapTestRunnerFactory } from '@stryker-mutator/tap-runner'
import { orderTests } from './mutation-order.mjs'

const createTapRunner = createTapTestRunnerFactory()

/** Hands everything to the tap runner, a mutant run with its test files reordered. */
class OrderedTapRunner {
  #tap

  constructor (tap) {
    this.#tap = tap
  }

  capabilities () { return this.#tap.capabilities() }
  async init () { await this.#tap.init?.() }
  async dispose () { await this.#tap.dispose?.() }
  async dryRun (options) { return await this.#tap.dryRun(options) }

  async mutantRun (options) {
    const { testFilter, sandboxFileName } = options
    if (testFilter === undefined) return await this.#tap.mutantRun(options)
    // The mutant's own fileName is the project's file, outside the sandbox the tests run in.
    return await this.#tap.mutantRun({ ...options, testFilter: orderTests(testFilter, sandboxFileName, process.cwd()) })
  }
}

function createOrderedTapRunner (injector) {
  return new OrderedTapRunner(createTapRunner(injector))
}
createOrderedTapRunner.inject = tokens(commonTokens.injector)

export const strykerPlugins = [declareFactoryPlugin(PluginKind.TestRunner, 'tap-ordered', createOrderedTapRunner)]
