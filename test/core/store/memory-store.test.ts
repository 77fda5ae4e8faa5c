/**
 * The default store as the core follows it: a take hands over everything pending, what is put
 * back by key is pending again (merged with what came meanwhile), and `pending()` keeps its
 * figures exact through every step.
 */
import t from 'tap'
import { keysOf } from '../../../lib/core/store/take.js'
import { MemoryStore } from '../../../lib/core/store/usage-store.js'
import { RefKind, type UsageEntry } from '../../../lib/core/usage/types.js'

const sum = (id: string, micros: number, at: number): UsageEntry => ({ kind: RefKind.Agreement, id, feature: 'searches', micros, at })
const level = (id: string, micros: number, at: number): UsageEntry => ({ kind: RefKind.Agreement, id, feature: 'seats', micros, at, absolute: true })

t.test('pending() follows adds, takes and put-backs exactly, levels counted as pairs and not as units', async t => {
  const store = new MemoryStore()
  store.add({ entries: [sum('agr_1', 100_000, 10), sum('agr_2', 200_000, 20), level('agr_1', 5_000_000, 15)], oldest: 10 })
  store.add({ entries: [sum('agr_1', 200_000, 30)], oldest: 30 })
  t.same(store.pending(), { pairs: 3, micros: 500_000, oldest: 10 })

  const take = await store.take()
  t.same(store.pending(), { pairs: 0, micros: 0, oldest: Infinity }, 'in flight is not pending')
  t.equal(new Set(keysOf(take.entries)).size, 3, 'one key per entry: a sum and a level of one customer apart')

  store.add({ entries: [sum('agr_1', 1, 40)], oldest: 40 })
  const failed = take.entries.filter(entry => entry.id === 'agr_1')
  store.putBack(take.id, keysOf(failed))
  store.settle(take.id)
  t.same(store.pending(), { pairs: 2, micros: 300_001, oldest: 10 }, 'put back: merged with what came meanwhile, from the take\'s oldest')
  const next = await store.take()
  t.not(next.id, take.id, 'each take has its own id')
  t.same(next.entries.map(({ key, ...entry }) => entry).sort((a, b) => a.feature.localeCompare(b.feature)),
    [sum('agr_1', 300_001, 40), level('agr_1', 5_000_000, 15)])
})

t.test('keys never collide, whatever characters a feature code holds: every entry put back comes back', async t => {
  const store = new MemoryStore()
  // A sum of feature "x\na" and a level of feature "x" of one customer: two pairs, two keys.
  store.add({ entries: [{ ...sum('agr_1', 1_000_000, 10), feature: 'x\na' }, { ...level('agr_1', 2_000_000, 10), feature: 'x' }], oldest: 10 })
  const take = await store.take()
  t.equal(new Set(keysOf(take.entries)).size, 2)
  store.putBack(take.id, keysOf(take.entries))
  store.settle(take.id)
  t.same((await store.take()).entries.map(entry => [entry.feature, entry.micros]).sort(), [['x\na', 1_000_000], ['x', 2_000_000]])
})

t.test('a sum and a level of one pair (a journal or a fleet may hold both) are two entries, and both come back whole when put back', async t => {
  const store = new MemoryStore()
  store.add({ entries: [sum('agr_1', 1_500_000, 10), { ...level('agr_1', 7_000_000, 20), feature: 'searches' }], oldest: 10 })
  const take = await store.take()
  t.equal(new Set(keysOf(take.entries)).size, 2, 'one key each')
  store.putBack(take.id, keysOf(take.entries))
  store.settle(take.id)
  t.same(store.pending(), { pairs: 2, micros: 1_500_000, oldest: 10 })
  t.same((await store.take()).entries.map(({ key, ...entry }) => entry).sort((a, b) => Number(a.absolute === true) - Number(b.absolute === true)),
    [sum('agr_1', 1_500_000, 10), { ...level('agr_1', 7_000_000, 20), feature: 'searches' }])
})
