/**
 * The error classes as an app meets them, from source: two copies of the module (as two versions
 * of the package in one app load it) still agree on `instanceof`, and each error carries its code,
 * its fields and a message that says what failed. errors-brand.test.ts checks the same across the
 * built CommonJS and ES module copies.
 */
import t from 'tap'
import * as lib from '../../../lib/core/report/errors.js'
import { agreesAcrossCopies } from '../../helpers/error-copies.js'

// Another URL is another module instance: a second copy of the classes, as a second package copy has.
const secondCopy = new URL('../../../lib/core/report/errors.js?second-copy', import.meta.url).href
const other = await import(secondCopy) as typeof lib

t.test('an error from a second copy is an instance of its class and its bases, and of no sibling', async t => {
  t.not(other.InvalidOptionError, lib.InvalidOptionError, 'two copies are loaded')
  for (const [made, by] of [[other, lib], [lib, other]] as const) {
    agreesAcrossCopies(t, made, by)
    t.notOk(new made.KindeNetworkError('token request', new Error('reset')) instanceof by.KindeApiError)
  }
})

t.test('an error is an instance of its class and its bases in its own copy, and of no sibling', async t => {
  agreesAcrossCopies(t, lib, lib)
  agreesAcrossCopies(t, other, other)
})

t.test('nothing else passes for one of these errors, even an object that looks like one', async t => {
  const lookalike = { code: 'KINDE_METERING_INVALID_OPTION', name: 'InvalidOptionError', message: 'kinde-metering: option "x" is wrong' }
  for (const value of [new Error('plain'), lookalike, null, undefined, 'InvalidOptionError', 42]) {
    t.notOk((value as unknown) instanceof lib.InvalidOptionError, String(value))
    t.notOk((value as unknown) instanceof lib.KindeMeteringError, String(value))
  }
})

t.test('each error carries its stable code, its name, its fields and what failed', async t => {
  const invalid = new lib.InvalidOptionError('retry.attempts', 'must be a whole number')
  t.match(invalid, { name: 'InvalidOptionError', code: 'KINDE_METERING_INVALID_OPTION', option: 'retry.attempts' })
  t.equal(invalid.message, 'kinde-metering: option "retry.attempts" must be a whole number')

  const api = new lib.KindeApiError('agreements look-up', 503, { errors: [{ code: 'UNAVAILABLE' }] })
  t.match(api, { name: 'KindeApiError', code: 'KINDE_METERING_API_ERROR', status: 503, body: { errors: [{ code: 'UNAVAILABLE' }] } })
  t.equal(api.message, 'kinde-metering: agreements look-up failed with HTTP 503: {"errors":[{"code":"UNAVAILABLE"}]}')
  const page = new lib.KindeApiError('user look-up', 500, `<html>${'x'.repeat(1000)}</html>`)
  t.equal(page.message, `kinde-metering: user look-up failed with HTTP 500: <html>${'x'.repeat(494)}`, 'a text body is quoted as is, cut at 500 characters')

  const cause = new Error('socket hang up')
  const token = new lib.TokenError('token request was refused', 401, { cause, oauthError: 'invalid_client' })
  t.match(token, { name: 'TokenError', code: 'KINDE_METERING_TOKEN_ERROR', status: 401, oauthError: 'invalid_client', option: undefined })
  t.equal(token.message, 'kinde-metering: token request was refused')
  t.equal(token.cause, cause)
  t.match(new lib.TokenError('option "accessToken": the function failed', undefined, { option: 'accessToken' }), { status: undefined, option: 'accessToken', oauthError: undefined })

  const network = new lib.KindeNetworkError('organization look-up', cause)
  t.match(network, { name: 'KindeNetworkError', code: 'KINDE_METERING_NETWORK_ERROR' })
  t.equal(network.message, 'kinde-metering: organization look-up failed: socket hang up')
  t.equal(network.cause, cause)
})
