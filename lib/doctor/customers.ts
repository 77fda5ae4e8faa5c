// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * One check per customer × feature: resolved the way the plugin resolves it (user or organization
 * → billing customer → the first unexpired agreement that includes the feature), with the
 * agreement found or why there is none.
 */
import { KindeApiError } from '../core/report/errors.js'
import type { Agreement, KindeApi } from '../core/kinde/api.js'
import { activeAgreement } from '../core/kinde/resolver.js'
import type { CustomerRef } from '../core/usage/types.js'
import { describeCustomer, type SetupCheck } from './report.js'
import { GRANT_SCOPES, SCOPES } from './scopes.js'

/** Why a customer cannot be billed: thrown inside a check, turned into its failure. */
class Unbillable extends Error {
  constructor (message: string, readonly fix: string) {
    super(message)
  }
}

/** Checks that usage of `feature` by `customer` would reach an agreement. Never throws. */
export async function checkCustomer (api: KindeApi, customer: CustomerRef, feature: string): Promise<SetupCheck> {
  const label = `${describeCustomer(customer)} × ${feature}`
  const base = { name: 'customer' as const, customer, feature }
  if (customer.agreementId !== undefined) {
    return {
      ...base,
      status: 'warn',
      message: `${label}: unverified: Kinde's API cannot look an agreement up on its own; usage is sent to ${customer.agreementId} as is`,
      fix: 'name the customer by customerId, userId or orgCode to have its agreement checked'
    }
  }
  try {
    let customerId: string
    let path = ''
    if (customer.customerId !== undefined) {
      customerId = customer.customerId
    } else {
      customerId = await billingCustomer(api, customer)
      path = ` → customer ${customerId}`
    }
    const agreementId = await agreementFor(api, customerId, feature)
    return { ...base, status: 'pass', message: `${label}${path} → agreement ${agreementId}`, agreementId }
  } catch (error) {
    const { message, fix } = error instanceof Unbillable ? error : lookUpFailure(error as Error)
    return { ...base, status: 'fail', message: `${label}: ${message}`, fix }
  }
}

/** The billing customer of a user or organization. */
async function billingCustomer (api: KindeApi, customer: { userId: string } | { orgCode: string }): Promise<string> {
  const [what, id, owner] = 'userId' in customer
    ? ['user', customer.userId, await lookUp('the user look-up', SCOPES.users, () => api.userBilling(customer.userId))]
    : ['organization', customer.orgCode, await lookUp('the organization look-up', SCOPES.organizations, () => api.orgBilling(customer.orgCode))]
  if (!owner.found) {
    throw new Unbillable(`Kinde knows no ${what} ${id}`, `check the ${what === 'user' ? 'user id (the sub claim of its tokens)' : 'organization code (the org_code claim of its tokens)'}`)
  }
  if (owner.customerId === null) {
    throw new Unbillable(`${what} ${id} is not a billing customer`, `in Kinde, subscribe the ${what} to a plan (Billing), or bill it another way`)
  }
  return owner.customerId
}

/** The agreement the plugin would bill usage of `feature` to, or why there is none. */
async function agreementFor (api: KindeApi, customerId: string, feature: string): Promise<string> {
  const listed = await lookUp('the agreements look-up', SCOPES.agreements, () => api.agreements(customerId, feature))
  const withFeature = listed.filter(agreement => agreement.entitlements?.some(entitlement => entitlement.feature_code === feature) === true)
  const active = activeAgreement(withFeature, feature, Date.now())
  if (active !== null) return active
  if (withFeature.length > 0) {
    throw new Unbillable(`customer ${customerId} has only expired agreements with feature ${feature} (${withFeature.map(expiry).join(', ')})`,
      'in Kinde, renew the customer\'s subscription to a plan that includes the feature')
  }
  const all = await lookUp('the agreements look-up', SCOPES.agreements, () => api.agreements(customerId))
  if (all.length === 0) {
    throw new Unbillable(`customer ${customerId} holds no agreement (or is not a billing customer)`, 'in Kinde, subscribe the customer to a plan that includes the feature')
  }
  throw new Unbillable(`feature ${feature} is not in the plan of any agreement of customer ${customerId} (${all.map(plan).join(', ')})`,
    'check the feature code (the feature\'s key in the plan), or add the feature to the customer\'s plan in Kinde')
}

function expiry (agreement: Agreement): string {
  return `${agreement.id} expired on ${String(agreement.expires_on)}`
}

function plan (agreement: Agreement): string {
  return `${agreement.id}: plan ${String(agreement.plan_code)}`
}

/** Runs a look-up needing `scope`; a 403 says the scope is missing. */
async function lookUp<T> (what: string, scope: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (error instanceof KindeApiError && error.status === 403) {
      throw new Unbillable(`${what} was refused (HTTP 403): the token lacks ${scope}`, `${GRANT_SCOPES} ${scope}`)
    }
    throw error
  }
}

/** A look-up that failed for another reason than a missing scope (Kinde down, throttled, unreachable). */
function lookUpFailure (error: Error): { message: string, fix: string } {
  return { message: error.message.replace(/^kinde-metering: /, ''), fix: 'try again shortly; the plugin keeps such usage pending and retries' }
}
