import t from 'tap'
import { addMicros, formatMicros, isZero, parseMicros, subtractMicros, toMicros } from '../../../lib/core/usage/decimal.js'

t.test('ten thousand tenths sum to exactly 1000', async t => {
  let sum = toMicros(0)
  for (let i = 0; i < 10_000; i++) sum = addMicros(sum, toMicros(0.1))
  t.equal(formatMicros(sum), '1000')
})

t.test('0.1 + 0.2 is 0.3, and tiny amounts never print with an exponent', async t => {
  t.equal(formatMicros(addMicros(toMicros(0.1), toMicros(0.2))), '0.3')
  t.equal(formatMicros(toMicros(0.000001)), '0.000001')
  t.equal(formatMicros(toMicros(1e-7)), '0', 'past six fractional digits rounds away')
  t.equal(formatMicros(toMicros(2.5)), '2.5')
})

t.test('values that cannot be billed are refused', async t => {
  for (const value of [-1, NaN, Infinity, -Infinity, '1', null, undefined]) {
    t.equal(toMicros(value), -1, String(value))
  }
})

t.test('sums past 2^53 micros stay exact in bigint', async t => {
  const big = toMicros(9_000_000_000)
  t.equal(typeof big, 'number')
  const sum = addMicros(big, big)
  t.equal(typeof sum, 'bigint')
  t.equal(formatMicros(sum), '18000000000')
  t.equal(formatMicros(addMicros(sum, toMicros(0.5))), '18000000000.5')
  t.equal(formatMicros(toMicros(1e16)), '10000000000000000')
  t.equal(formatMicros(subtractMicros(sum, big)), '9000000000')
  t.equal(typeof subtractMicros(sum, big), 'number')
  t.equal(typeof subtractMicros(addMicros(sum, sum), big), 'bigint')
  t.equal(subtractMicros(5, 2), 3)
})

t.test('parseMicros reads what formatMicros writes', async t => {
  for (const text of ['0', '1', '0.3', '1000', '0.000001', '123456789.123456', '18000000000000']) {
    t.equal(formatMicros(parseMicros(text)), text)
  }
  t.equal(typeof parseMicros('18000000000000'), 'bigint')
  for (const text of ['', '-1', '1e-7', '1.1234567', 'abc', '.5']) t.equal(parseMicros(text), -1, text)
})

t.test('isZero knows both representations', async t => {
  t.ok(isZero(0))
  t.ok(isZero(0n))
  t.notOk(isZero(1))
})

t.test('amounts stay plain numbers up to 2^53 - 1 micros and become bigints past it, exactly', async t => {
  const max = Number.MAX_SAFE_INTEGER
  // Plain numbers are what JSON, the journal and the stats carry; a bigint appears only when needed.
  t.equal(addMicros(1, 2), 3)
  t.equal(addMicros(max - 1, 1), max, 'the largest safe sum is still a number')
  t.equal(addMicros(max, 1), BigInt(max) + 1n, 'one micro more is a bigint')
  t.equal(subtractMicros(BigInt(max) + 1n, 1), max, 'a bigint difference back in range is a number again')
  t.equal(subtractMicros(BigInt(max) + 2n, 1), BigInt(max) + 1n)
  t.equal(parseMicros('0.3'), 300_000)
  t.equal(parseMicros('9007199254.740991'), max, 'parsed as a number up to the largest safe amount')
  t.equal(parseMicros('9007199254.740992'), BigInt(max) + 1n, 'and as a bigint past it')
})

t.test('values near and past 9 billion units keep every digit a double holds', async t => {
  // The largest value converted through a double keeps its six fractional digits.
  t.equal(formatMicros(toMicros(Number.MAX_SAFE_INTEGER / 1_000_000)), '9007199254.740992')
  const huge = toMicros(1e10)
  t.equal(huge, 10n ** 16n, 'past it, whole units as a bigint')
  t.equal(formatMicros(addMicros(huge, 1)), '10000000000.000001', 'and a micro added to it is not lost')
  t.equal(formatMicros(addMicros(1, huge)), '10000000000.000001', 'nor when the huge amount comes second')
})
