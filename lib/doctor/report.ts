// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * The shape of a setup check's answer: one line per check, in the order they ran, each saying
 * what was found and, when it failed, what to do.
 */
import type { CustomerRef } from '../core/usage/types.js'

/** `pass`: verified; `fail`: Kinde will not accept the usage as set up; `warn`: could not be verified. */
export type CheckStatus = 'pass' | 'fail' | 'warn'

/** What a check looked at, in the order checks run. */
export type CheckName = 'domain' | 'credentials' | 'scopes' | 'features' | 'customer'

/** One check's result. */
export interface SetupCheck {
  /** What was checked. */
  name: CheckName
  status: CheckStatus
  /** What was found, in one sentence. Never carries the client secret or a token. */
  message: string
  /** For a failure or a warning: what to do about it. */
  fix?: string
  /** For `customer` checks: the customer reference checked. */
  customer?: CustomerRef
  /** For `customer` checks: the billing feature code checked. */
  feature?: string
  /** For `customer` checks that passed: the agreement usage would be billed to. */
  agreementId?: string
  /** For a `scopes` failure: the scopes the token lacks. */
  missingScopes?: string[]
}

/** Every check of a setup, and the verdict. */
export interface SetupReport {
  /** True when no check failed (warnings do not fail a setup). */
  ok: boolean
  /** The Kinde origin checked, when the domain was well formed. */
  origin?: string
  /** The checks, in the order they ran. Checks that depend on a failed one are not run. */
  checks: SetupCheck[]
  /** How many checks passed, failed and warned. */
  counts: Record<CheckStatus, number>
}

/** Builds the report of `checks`, with every occurrence of `secret` masked as a last line of defence. */
export function reportOf (checks: SetupCheck[], origin: string | undefined, secret: string | undefined): SetupReport {
  const counts: Record<CheckStatus, number> = { pass: 0, fail: 0, warn: 0 }
  const masked = checks.map(check => {
    counts[check.status]++
    if (secret === undefined) return check
    return { ...check, message: mask(check.message, secret), ...(check.fix === undefined ? {} : { fix: mask(check.fix, secret) }) }
  })
  return { ok: counts.fail === 0, ...(origin === undefined ? {} : { origin }), checks: masked, counts }
}

function mask (text: string, secret: string): string {
  return text.split(secret).join('********')
}

/** `userId=kp_123`: a customer reference as the `--customer` flag writes it. */
export function describeCustomer (customer: CustomerRef): string {
  const [field, id] = Object.entries(customer)[0] as [string, string]
  return `${field}=${id}`
}
