// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * The scopes check: what the token carries against what the customers to resolve need. Only
 * `create:meter_usage` is needed to send usage; each customer kind needs its look-ups' scopes.
 */
import { RefKind, REF_FIELDS, type CustomerRef } from '../core/usage/types.js'
import type { SetupCheck } from './report.js'

/** The scope each Management API call the plugin makes needs. */
export const SCOPES = {
  meterUsage: 'create:meter_usage',
  users: 'read:users',
  organizations: 'read:organizations',
  agreements: 'read:billing_agreements'
} as const

/** Where in Kinde scopes are granted to an M2M application. */
export const GRANT_SCOPES = 'in Kinde, Settings > APIs > Kinde Management API > Applications: open this application\'s scopes and enable'

/** The scopes needed, each with why, for customers named as these are. */
export function requiredScopes (customers: readonly CustomerRef[]): Map<string, string> {
  const kinds = new Set(customers.map(customer => REF_FIELDS.indexOf(Object.keys(customer)[0] as typeof REF_FIELDS[number]) as RefKind))
  const needed = new Map<string, string>([[SCOPES.meterUsage, 'to send meter usage']])
  if (kinds.has(RefKind.User)) needed.set(SCOPES.users, 'to look up userId customers')
  if (kinds.has(RefKind.Org)) needed.set(SCOPES.organizations, 'to look up orgCode customers')
  if (kinds.has(RefKind.User) || kinds.has(RefKind.Org) || kinds.has(RefKind.Customer)) {
    needed.set(SCOPES.agreements, 'to find the agreements of customers')
  }
  return needed
}

/** Checks `granted` (the token answer's `scope`; `undefined` when it listed none) against what is needed. */
export function checkScopes (granted: string[] | undefined, customers: readonly CustomerRef[]): SetupCheck {
  const needed = requiredScopes(customers)
  const names = [...needed.keys()]
  if (granted === undefined) {
    return {
      name: 'scopes',
      status: 'warn',
      message: `Kinde's token answer listed no scopes, so these could not be verified: ${names.join(', ')}`,
      fix: 'a missing scope shows as a 403 in the look-ups below, and in the send of meter usage'
    }
  }
  const missing = names.filter(scope => !granted.includes(scope))
  if (missing.length === 0) return { name: 'scopes', status: 'pass', message: `the token carries ${names.join(', ')}` }
  return {
    name: 'scopes',
    status: 'fail',
    message: `the token lacks ${missing.map(scope => `${scope} (${needed.get(scope)!})`).join(', ')}`,
    fix: `${GRANT_SCOPES} ${missing.join(', ')}`,
    missingScopes: missing
  }
}
