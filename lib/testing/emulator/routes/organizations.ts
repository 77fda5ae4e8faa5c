/**
 * `GET /api/v1/organization`: an organization by code, with its billing block when expanded.
 *
 * The billing block holds `billing_customer_id` and the customer's current agreements.
 * @module
 */
import { isExpired, type Directory } from '../directory.js'
import { kindeError } from '../reply.js'
import type { Route } from '../route.js'
import { lookUpRoute } from './look-up.js'

/**
 * The organization look-up route.
 * @param createdOn - ISO date-time every organization reports as `created_on`.
 */
export function organizationRoute(directory: Directory, createdOn: string): Route {
  return lookUpRoute({
    endpoint: 'organization',
    scope: 'read:organizations',
    param: 'code',
    find: (code) => directory.organization(code),
    unknown: (code) => kindeError(400, 'ORGANIZATION_NOT_FOUND', `No organization with code ${code}`),
    body: (organization, billing) => ({
      code: organization.code,
      name: organization.code,
      handle: null,
      is_default: false,
      external_id: null,
      is_auto_membership_enabled: false,
      created_on: createdOn,
      is_suspended: false,
      ...(billing && organization.customerId !== undefined
        ? { billing: { billing_customer_id: organization.customerId, agreements: currentAgreementsOf(directory, organization.customerId) } }
        : {}),
    }),
  })
}

/** The organization listing holds the agreements the customer is "currently subscribed to". */
function currentAgreementsOf(directory: Directory, customerId: string): Array<{ plan_code: string; agreement_id: string }> {
  return directory.agreementsOf(customerId)
    .filter((a) => !isExpired(a))
    .map((a) => ({ plan_code: a.planCode, agreement_id: a.id }))
}
