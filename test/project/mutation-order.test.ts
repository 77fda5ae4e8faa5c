/**
 * The order a mutation run tries a mutant's test files in (scripts/mutation-order.mjs): the
 * test written for the mutated file first, so that most mutants die on the first file tried.
 */
import t from 'tap'
import { orderTests } from '../../scripts/mutation-order.mjs'

const covering = [
  'test/adapters/fastify.test.ts',
  'test/core/metering.test.ts',
  'test/core/dead-letter/dead-letter.test.ts',
  'test/doctor/doctor.test.ts',
  'test/core/usage/absolute.test.ts',
  'test/core/dead-letter/replay.test.ts'
]

t.test('the mirroring test first, then its folder, then the rest of the core, then the others, each in the order given', async t => {
  t.same(orderTests(covering, '/sandbox/lib/core/dead-letter/dead-letter.ts', '/sandbox'), [
    'test/core/dead-letter/dead-letter.test.ts',
    'test/core/dead-letter/replay.test.ts',
    'test/core/metering.test.ts',
    'test/core/usage/absolute.test.ts',
    'test/adapters/fastify.test.ts',
    'test/doctor/doctor.test.ts'
  ])
})

t.test('a file at the top of the core has the top-level core tests as its folder; absolute test paths keep their form', async t => {
  const absolute = covering.map(file => `/sandbox/${file}`)
  t.same(orderTests(absolute, 'lib/core/metering.ts', '/sandbox'), [
    '/sandbox/test/core/metering.test.ts',
    '/sandbox/test/core/dead-letter/dead-letter.test.ts',
    '/sandbox/test/core/usage/absolute.test.ts',
    '/sandbox/test/core/dead-letter/replay.test.ts',
    '/sandbox/test/adapters/fastify.test.ts',
    '/sandbox/test/doctor/doctor.test.ts'
  ])
})

t.test('a file without a test of its own keeps the given order within each group', async t => {
  t.same(orderTests(covering, '/sandbox/lib/core/adapter-hooks.ts', '/sandbox'), [
    'test/core/metering.test.ts',
    'test/core/dead-letter/dead-letter.test.ts',
    'test/core/usage/absolute.test.ts',
    'test/core/dead-letter/replay.test.ts',
    'test/adapters/fastify.test.ts',
    'test/doctor/doctor.test.ts'
  ])
})
