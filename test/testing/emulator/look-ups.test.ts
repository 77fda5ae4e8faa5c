/**
 * The look-ups from a user or organization to its agreements (routes/users.ts, organizations.ts,
 * agreements.ts) over the seeded and added data (directory.ts).
 */
import t from 'tap'
import type { EmulatorOptions } from '../../../lib/testing.js'
import { AGREEMENT, FEATURE, billing, start, getToken, apiGet, sendUsage, delta } from '../../helpers/emulator.js'

t.test('look-ups from user and organization to agreements', async (t) => {
  const data: EmulatorOptions = {
    users: [{ id: 'kp_payer', customerId: 'customer_a' }, { id: 'kp_free' }],
    organizations: [{ code: 'org_payer', customerId: 'customer_a' }, { code: 'org_free' }, { code: 'org_new', customerId: 'customer_new' }],
    agreements: billing.agreements,
  }

  t.test('user by id, with billing.customer_id when expanded', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    const expanded = await apiGet(kinde, token, '/api/v1/user?id=kp_payer&expand=organizations,%20billing')
    t.match(expanded, { status: 200, body: { id: 'kp_payer', is_suspended: false, billing: { customer_id: 'customer_a' } } })
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/user?id=kp_payer')).body, 'no billing unless asked')
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/user?id=kp_free&expand=billing')).body, 'no billing for a non-customer')
    t.match(await apiGet(kinde, token, '/api/v1/user?id=kp_nobody'), { status: 400, body: { errors: [{ code: 'USER_NOT_FOUND' }] } })
    t.match(await apiGet(kinde, token, '/api/v1/user'), { status: 400, body: { errors: [{ code: 'INVALID_REQUEST', message: /id/ }] } })
    t.equal(kinde.calls.user, 5)
  })

  t.test('organization by code, with billing_customer_id and current agreements when expanded', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    const expanded = await apiGet(kinde, token, '/api/v1/organization?code=org_payer&expand=billing')
    t.match(expanded, { status: 200, body: { code: 'org_payer', is_suspended: false } })
    t.same(expanded.body.billing, { billing_customer_id: 'customer_a', agreements: [{ plan_code: 'pro', agreement_id: AGREEMENT }] },
      'the expired agreement is not current')
    t.same((await apiGet(kinde, token, '/api/v1/organization?code=org_new&expand=billing')).body.billing,
      { billing_customer_id: 'customer_new', agreements: [] })
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/organization?code=org_payer')).body)
    t.notOk('billing' in (await apiGet(kinde, token, '/api/v1/organization?code=org_free&expand=billing')).body)
    t.match(await apiGet(kinde, token, '/api/v1/organization?code=org_nobody'), { status: 400, body: { errors: [{ code: 'ORGANIZATION_NOT_FOUND' }] } })
    t.match(await apiGet(kinde, token, '/api/v1/organization'), { status: 400, body: { errors: [{ code: 'INVALID_REQUEST', message: /code/ }] } })
  })

  t.test('agreements of a customer, expired ones included, in Kinde\'s shape', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    const listed = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_a')
    t.same(listed.body, {
      code: 'OK',
      message: 'Success',
      has_more: false,
      agreements: [
        {
          id: AGREEMENT, plan_code: 'pro', expires_on: null, billing_group_id: null,
          entitlements: [
            { feature_code: FEATURE, entitlement_id: `entitlement_${AGREEMENT}_${FEATURE}` },
            { feature_code: 'storage_gb', entitlement_id: `entitlement_${AGREEMENT}_storage_gb` },
          ],
        },
        {
          id: 'agreement_old', plan_code: 'starter', expires_on: '2020-01-01T00:00:00Z', billing_group_id: null,
          entitlements: [{ feature_code: FEATURE, entitlement_id: `entitlement_agreement_old_${FEATURE}` }],
        },
      ],
    })
    const byFeature = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_a&feature_code=storage_gb')
    t.same(byFeature.body.agreements.map((a: { id: string }) => a.id), [AGREEMENT])
  })

  t.test('agreement listings know customers from users, organizations and agreements alone', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    kinde.addUser({ id: 'kp_late', customerId: 'customer_user_only' })
    kinde.addAgreement({ id: 'agreement_z', customerId: 'customer_agreement_only', features: ['seats'] })
    for (const customer of ['customer_user_only', 'customer_new']) {
      t.match(await apiGet(kinde, token, `/api/v1/billing/agreements?customer_id=${customer}`),
        { status: 200, body: { has_more: false, agreements: [] } }, customer)
    }
    const added = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_agreement_only')
    t.match(added.body.agreements, [{ id: 'agreement_z', plan_code: 'emulator_plan', expires_on: null }], 'default plan code')
    t.match(await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_nobody'),
      { status: 400, body: { errors: [{ code: 'CUSTOMER_NOT_FOUND' }] } })
    t.match(await apiGet(kinde, token, '/api/v1/billing/agreements'),
      { status: 400, body: { errors: [{ code: 'INVALID_REQUEST', message: /customer_id/ }] } })
  })

  t.test('data added at run time replaces entries with the same id in place', async (t) => {
    const kinde = await start(t, data)
    const token = await getToken(kinde)
    kinde.addAgreement({ id: AGREEMENT, customerId: 'customer_a', planCode: 'enterprise', features: ['seats'] })
    kinde.addOrganization({ code: 'org_free', customerId: 'customer_a' })
    const listed = await apiGet(kinde, token, '/api/v1/billing/agreements?customer_id=customer_a')
    t.same(listed.body.agreements.map((a: { id: string; plan_code: string }) => [a.id, a.plan_code]),
      [[AGREEMENT, 'enterprise'], ['agreement_old', 'starter']])
    const organization = await apiGet(kinde, token, '/api/v1/organization?code=org_free&expand=billing')
    t.equal(organization.body.billing.billing_customer_id, 'customer_a')
    t.equal((await sendUsage(kinde, token, delta('1'))).status, 400, `${FEATURE} is no longer an entitlement`)
  })
})
