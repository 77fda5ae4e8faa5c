/**
 * An app can load this package twice: its CommonJS build through `require` (a dependency) and its
 * ES module build through `import` (the app). Errors thrown by one copy must still pass the other
 * copy's `instanceof`, or an app's `catch (error) { if (error instanceof InvalidOptionError) … }`
 * silently misses them.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as lib from '../../../lib/core/report/errors.js'
import { agreesAcrossCopies } from '../../helpers/error-copies.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const cjs = createRequire(import.meta.url)(join(root, 'dist/cjs/index.js')) as typeof lib
const esm = await import(join(root, 'dist/esm/index.js')) as typeof lib

t.test('an error from one copy is an instance of the same class, and its bases, in every other copy', async t => {
  t.not(cjs.InvalidOptionError, esm.InvalidOptionError, 'two copies are loaded')
  for (const [made, other] of [[cjs, esm], [esm, cjs], [cjs, lib], [esm, lib]] as const) agreesAcrossCopies(t, made, other)
})

t.test('a subclass made by the app is branded with its own name and its bases', async t => {
  class AppError extends cjs.InvalidOptionError {}
  const error = new AppError('store', 'is wrong')
  t.ok(error instanceof lib.InvalidOptionError)
  t.ok(error instanceof lib.KindeMeteringError)
  t.ok(error instanceof AppError)
  t.notOk(new lib.InvalidOptionError('store', 'is wrong') instanceof AppError)
})

t.test('nothing else passes for one of these errors', async t => {
  for (const value of [new Error('plain'), { code: 'KINDE_METERING_INVALID_OPTION', name: 'InvalidOptionError' }, null, 'InvalidOptionError', 42]) {
    t.notOk((value as unknown) instanceof lib.InvalidOptionError, String(value))
    t.notOk((value as unknown) instanceof lib.KindeMeteringError, String(value))
  }
})
