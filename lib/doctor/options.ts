// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * What a setup check is asked to verify, validated once: invalid input throws an
 * {@link InvalidOptionError} naming the option, before anything is sent to Kinde.
 */
import { InvalidOptionError } from '../core/report/errors.js'
import { MAX_REFERENCE_LENGTH } from '../core/metering.js'
import { REF_FIELDS, type CustomerRef } from '../core/usage/types.js'

/** Options of {@link checkKindeSetup}. */
export interface SetupCheckOptions {
  /** Kinde domain, as the plugin's `domain` option takes it. Default: env `KINDE_DOMAIN`. */
  domain?: string
  /** Client id of the M2M application. Default: env `KINDE_MANAGEMENT_CLIENT_ID`. */
  clientId?: string
  /** Its client secret; never printed. Default: env `KINDE_MANAGEMENT_CLIENT_SECRET`. */
  clientSecret?: string
  /** Billing feature codes the app meters; each is checked against each customer's plan. Default: none. */
  features?: string[]
  /**
   * Customers to resolve to an agreement the way the plugin does, for each feature. Default: none.
   * Customers need at least one feature.
   */
  customers?: CustomerRef[]
  /** Milliseconds before a request to Kinde times out. Default 10,000 (ten seconds). */
  requestTimeout?: number
  /** Aborting it stops the checks at once: those cut short fail, and the report is returned. */
  signal?: AbortSignal
  /** Where `KINDE_*` defaults are read. Default: `process.env`. */
  env?: NodeJS.ProcessEnv
}

/** What to check, validated. */
export interface CheckTargets {
  features: readonly string[]
  customers: readonly CustomerRef[]
}

/**
 * Validates `features` and `customers`; `prefix` is prepended to the option names in errors
 * (`checkSetup.` under the plugin).
 * @throws InvalidOptionError naming the option at fault.
 */
export function resolveTargets (options: { features?: unknown, customers?: unknown }, prefix = ''): CheckTargets {
  const features = options.features ?? []
  if (!Array.isArray(features) || !features.every(validReference)) {
    throw new InvalidOptionError(`${prefix}features`, `must be an array of feature codes, each a string of 1 to ${MAX_REFERENCE_LENGTH} characters`)
  }
  const customers = options.customers ?? []
  if (!Array.isArray(customers)) throw new InvalidOptionError(`${prefix}customers`, 'must be an array of customer references')
  customers.forEach((customer: unknown, i) => {
    if (!isCustomerRef(customer)) {
      throw new InvalidOptionError(`${prefix}customers[${i}]`, `must name exactly one of ${REF_FIELDS.join(', ')}, a string of 1 to ${MAX_REFERENCE_LENGTH} characters`)
    }
  })
  if (customers.length > 0 && features.length === 0) {
    throw new InvalidOptionError(`${prefix}features`, 'must name at least one feature code when customers are given: a customer is resolved per feature')
  }
  return { features, customers }
}

function validReference (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_REFERENCE_LENGTH
}

function isCustomerRef (value: unknown): value is CustomerRef {
  if (value === null || typeof value !== 'object') return false
  const entries = Object.entries(value)
  return entries.length === 1 && (REF_FIELDS as readonly string[]).includes(entries[0][0]) && validReference(entries[0][1])
}
