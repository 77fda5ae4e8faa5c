/**
 * Paging of agreement listings (routes/agreements.ts) as Kinde pages them.
 */
import t from 'tap'
import { start, getToken, apiGet, type Answer } from '../../helpers/emulator.js'

t.test('agreement pagination', async (t) => {
  const agreements = ['p1', 'p2', 'p3', 'p4', 'p5'].map((id, i) =>
    ({ id, customerId: 'customer_p', features: i % 2 === 1 ? ['x', 'y'] : ['y'] }))
  const ids = (got: Answer): string[] => got.body.agreements.map((a: { id: string }) => a.id)

  t.test('pages forwards with starting_after and backwards with ending_before', async (t) => {
    const kinde = await start(t, { agreements, pageSize: 2 })
    const token = await getToken(kinde)
    const list = (query: string): Promise<Answer> => apiGet(kinde, token, `/api/v1/billing/agreements?customer_id=customer_p${query}`)
    const first = await list('')
    t.same([ids(first), first.body.has_more], [['p1', 'p2'], true], 'default page size from options')
    const second = await list('&starting_after=p2')
    t.same([ids(second), second.body.has_more], [['p3', 'p4'], true])
    const last = await list('&starting_after=p4')
    t.same([ids(last), last.body.has_more], [['p5'], false])
    const big = await list('&page_size=3&starting_after=p1')
    t.same([ids(big), big.body.has_more], [['p2', 'p3', 'p4'], true])
    const before = await list('&ending_before=p5&page_size=2')
    t.same([ids(before), before.body.has_more], [['p3', 'p4'], true])
    const fromStart = await list('&ending_before=p3&page_size=5')
    t.same([ids(fromStart), fromStart.body.has_more], [['p1', 'p2'], false])
    const filtered = await list('&feature_code=x&page_size=1&starting_after=p2')
    t.same([ids(filtered), filtered.body.has_more], [['p4'], false], 'the cursor runs over the filtered list')
  })

  t.test('Kinde\'s default page size is 10', async (t) => {
    const many = Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, customerId: 'customer_m', features: ['y'] }))
    const kinde = await start(t, { agreements: many })
    const page = await apiGet(kinde, await getToken(kinde), '/api/v1/billing/agreements?customer_id=customer_m')
    t.equal(page.body.agreements.length, 10)
    t.equal(page.body.has_more, true)
  })

  t.test('rejects bad paging parameters', async (t) => {
    const kinde = await start(t, { agreements })
    const token = await getToken(kinde)
    const cases: Array<[string, string]> = [
      ['&page_size=0', 'INVALID_REQUEST'],
      ['&page_size=ten', 'INVALID_REQUEST'],
      ['&page_size=101', 'PAGE_SIZE_LIMIT_EXCEEDED'],
      ['&starting_after=p1&ending_before=p3', 'TOO_MANY_PARAMETERS'],
      ['&starting_after=agreement_elsewhere', 'INVALID_REQUEST'],
      ['&feature_code=x&starting_after=p1', 'INVALID_REQUEST'],
    ]
    for (const [query, code] of cases) {
      const got = await apiGet(kinde, token, `/api/v1/billing/agreements?customer_id=customer_p${query}`)
      t.match(got, { status: 400, body: { errors: [{ code }] } }, query)
    }
  })
})
