/**
 * The `instanceof` checks both error-brand tests run between two copies of the error classes
 * (source copies in test/core/report/errors.test.ts, the built CommonJS and ES module copies in
 * errors-brand.test.ts).
 */
import type { Test } from 'tap'
import type * as lib from '../../lib/core/report/errors.js'

/** An error made by copy `made` is an instance of its class and its bases in copy `by`, and of no sibling. */
export function agreesAcrossCopies (t: Test, made: typeof lib, by: typeof lib): void {
  const invalid = new made.InvalidOptionError('flushInterval', 'must be a positive number')
  t.ok(invalid instanceof by.InvalidOptionError)
  t.ok(invalid instanceof by.KindeMeteringError)
  t.notOk(invalid instanceof by.TokenError, 'not an instance of a sibling class')
  t.notOk(invalid instanceof by.KindeApiError)
  t.ok(new made.TokenError('refused', 401) instanceof by.TokenError)
  t.ok(new made.KindeNetworkError('token request', new Error('reset')) instanceof by.KindeMeteringError)
}
