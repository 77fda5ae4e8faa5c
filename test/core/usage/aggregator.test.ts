import t from 'tap'
import { Aggregator } from '../../../lib/core/usage/aggregator.js'
import { formatMicros } from '../../../lib/core/usage/decimal.js'
import { RefKind } from '../../../lib/core/usage/types.js'

t.test('sums per (kind, id, feature) and keeps the latest timestamp', async t => {
  const agg = new Aggregator()
  agg.add(RefKind.Agreement, 'a1', 'searches', 1_000_000, 10)
  agg.add(RefKind.Agreement, 'a1', 'searches', 2_000_000, 30)
  agg.add(RefKind.Agreement, 'a1', 'searches', 1_000_000, 20)
  agg.add(RefKind.User, 'a1', 'searches', 5_000_000, 5)
  agg.add(RefKind.Agreement, 'a1', 'tokens', 7_000_000, 40)
  t.equal(agg.size, 3)
  t.equal(agg.oldest, 5)
  t.equal(formatMicros(agg.total()), '16')
  const { entries, oldest } = agg.drain()
  t.equal(oldest, 5)
  t.same(entries, [
    { kind: RefKind.Agreement, id: 'a1', feature: 'searches', micros: 4_000_000, at: 30 },
    { kind: RefKind.Agreement, id: 'a1', feature: 'tokens', micros: 7_000_000, at: 40 },
    { kind: RefKind.User, id: 'a1', feature: 'searches', micros: 5_000_000, at: 5 }
  ])
  t.equal(agg.size, 0, 'drain starts afresh')
  t.equal(agg.oldest, Infinity)
})

t.test('capacity refuses new pairs but never existing ones', async t => {
  const agg = new Aggregator()
  t.ok(agg.add(RefKind.Org, 'o1', 'f', 1, 1, 2))
  t.ok(agg.add(RefKind.Org, 'o1', 'g', 1, 1, 2))
  t.notOk(agg.add(RefKind.Org, 'o1', 'h', 1, 1, 2), 'new feature of a known id')
  t.notOk(agg.add(RefKind.Org, 'o2', 'f', 1, 1, 2), 'new id')
  t.ok(agg.add(RefKind.Org, 'o1', 'f', 1, 1, 2), 'existing pair keeps summing')
  t.equal(agg.size, 2)
})

t.test('merge adds a drained batch back, whatever the capacity', async t => {
  const a = new Aggregator()
  a.add(RefKind.Customer, 'c1', 'f', 1, 100)
  const b = new Aggregator()
  b.add(RefKind.Customer, 'c1', 'f', 2, 50)
  b.merge(a.drain())
  const { entries, oldest } = b.drain()
  t.same(entries, [{ kind: RefKind.Customer, id: 'c1', feature: 'f', micros: 3, at: 100 }])
  t.equal(oldest, 50)
  b.merge({ entries: [], oldest: 7 })
  t.equal(b.oldest, 7)
})

t.test('drain hands over every kind of reference, in kind order, and the aggregator sums on afterwards', async t => {
  const agg = new Aggregator()
  for (const kind of [RefKind.Org, RefKind.User, RefKind.Customer, RefKind.Agreement]) agg.add(kind, 'x', 'f', kind + 1, 10 + kind)
  t.same(agg.drain().entries.map(entry => [entry.kind, entry.micros, entry.at]),
    [[RefKind.Agreement, 1, 10], [RefKind.Customer, 2, 11], [RefKind.User, 3, 12], [RefKind.Org, 4, 13]])
  for (const kind of [RefKind.Agreement, RefKind.Org]) t.ok(agg.add(kind, 'y', 'g', 5, 20), 'adds after a drain')
  t.equal(agg.size, 2)
  t.same(agg.drain(), {
    entries: [{ kind: RefKind.Agreement, id: 'y', feature: 'g', micros: 5, at: 20 }, { kind: RefKind.Org, id: 'y', feature: 'g', micros: 5, at: 20 }],
    oldest: 20
  }, 'only what came after the first drain')
})

t.test('sums and levels share one capacity: a new sum or level past it is refused, a level held still takes a new value', async t => {
  const agg = new Aggregator()
  t.ok(agg.add(RefKind.Agreement, 'a1', 'searches', 1, 1, 2))
  t.ok(agg.set(RefKind.Agreement, 'a1', 'seats', 5, 1, 2))
  t.notOk(agg.set(RefKind.Agreement, 'a2', 'seats', 5, 1, 2), 'a new level past capacity')
  t.notOk(agg.add(RefKind.Agreement, 'a1', 'tokens', 1, 1, 2), 'a new sum past capacity, the level counted in')
  t.ok(agg.set(RefKind.Agreement, 'a1', 'seats', 6, 2, 2), 'the level held')
  t.equal(agg.size, 2)
  t.same(agg.drain().entries.map(entry => [entry.id, entry.feature, entry.micros]), [['a1', 'searches', 1], ['a1', 'seats', 6]])
})
