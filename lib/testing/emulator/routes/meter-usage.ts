/**
 * `POST /api/v1/billing/meter_usage`: validates a meter usage record and applies it.
 *
 * Each record is noted as received before anything can stop it; it is checked field by field as
 * Kinde documents them, refused when no current agreement entitles its feature, else applied.
 * @module
 */
import { isExpired, type Directory } from '../directory.js'
import { kindeError, type Reply } from '../reply.js'
import type { Exchange, Route } from '../route.js'
import type { ReceivedRecord } from '../types.js'
import type { UsageLedger } from '../usage-ledger.js'

/** A validated meter usage body. */
interface MeterUsage {
  customer_agreement_id: string
  billing_feature_code: string
  meter_value: string
  meter_type_code?: 'absolute' | 'delta'
}

/**
 * The meter usage route.
 * @param directory - the agreements usage is recorded against.
 * @param ledger - where accepted usage is summed.
 * @param records - where each request whose body is a JSON object is listed, in arrival order.
 */
export function meterUsageRoute(directory: Directory, ledger: UsageLedger, records: ReceivedRecord[]): Route {
  return {
    endpoint: 'meter_usage',
    scope: 'create:meter_usage',
    receive(exchange: Exchange): void {
      const input = parseJsonObject(exchange.body)
      if (!input) return
      exchange.input = input
      exchange.record = receivedRecord(input)
      records.push(exchange.record)
    },
    handle(exchange: Exchange): Reply {
      const input = exchange.input
      if (!input) return kindeError(400, 'INVALID_REQUEST', 'The body must be a JSON object')
      const invalid = METER_USAGE_FIELDS.find((field) => !field.valid(input[field.name]))
      if (invalid) return kindeError(400, 'INVALID_REQUEST', `${invalid.name} ${invalid.rule}`)
      const usage = input as unknown as MeterUsage
      const problem = unbillable(directory, usage)
      if (problem) return problem
      ledger.apply(usage.customer_agreement_id, usage.billing_feature_code, usage.meter_value, usage.meter_type_code)
      exchange.applied = true
      ;(exchange.record as ReceivedRecord).applied = true
      return { status: 200, body: { message: 'Success', code: 'OK' } }
    },
  }
}

/** The record as a test reads it: fields as text, outcome not known yet. */
function receivedRecord(input: Record<string, unknown>): ReceivedRecord {
  const record: ReceivedRecord = {
    customer_agreement_id: asText(input.customer_agreement_id),
    billing_feature_code: asText(input.billing_feature_code),
    meter_value: asText(input.meter_value),
    applied: false,
    status: 0,
  }
  if (input.meter_usage_timestamp !== undefined) record.meter_usage_timestamp = asText(input.meter_usage_timestamp)
  if (input.meter_type_code !== undefined) record.meter_type_code = asText(input.meter_type_code)
  return record
}

/** Why usage cannot be recorded against the agreement and feature named, if it cannot. */
function unbillable(directory: Directory, usage: MeterUsage): Reply | undefined {
  const agreement = directory.agreement(usage.customer_agreement_id)
  if (!agreement) {
    return kindeError(400, 'AGREEMENT_NOT_FOUND', `customer_agreement_id ${usage.customer_agreement_id} does not exist`)
  }
  // Undocumented in Kinde; refusing makes a client that bills an expired agreement visible in tests.
  if (isExpired(agreement)) {
    return kindeError(400, 'AGREEMENT_EXPIRED', `customer_agreement_id ${agreement.id} expired on ${agreement.expiresOn}`)
  }
  if (!agreement.features.includes(usage.billing_feature_code)) {
    return kindeError(400, 'FEATURE_NOT_FOUND', `billing_feature_code ${usage.billing_feature_code} is not an entitlement of ${agreement.id}`)
  }
  return undefined
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

function asText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value) ?? ''
}

const PLAIN_DECIMAL = /^\d+(?:\.\d+)?$/
/** ISO 8601 date-time with a zone; Kinde's own example uses an hour-only offset (`+11`). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::\d{2})?)$/

function isDateTime(value: unknown): boolean {
  if (typeof value !== 'string' || !DATE_TIME.test(value)) return false
  // Date.parse rejects an hour-only offset, so complete it before checking the date is real.
  return !Number.isNaN(Date.parse(value.replace(/([+-]\d{2})$/, '$1:00')))
}

const isNonEmptyString = (value: unknown): boolean => typeof value === 'string' && value !== ''

/** Checks of a meter usage body, in the order Kinde's documentation lists the fields. */
const METER_USAGE_FIELDS: Array<{ name: string; rule: string; valid(value: unknown): boolean }> = [
  { name: 'customer_agreement_id', rule: 'is required and must be a non-empty string', valid: isNonEmptyString },
  { name: 'billing_feature_code', rule: 'is required and must be a non-empty string', valid: isNonEmptyString },
  {
    name: 'meter_value',
    rule: 'is required and must be a string holding a non-negative decimal such as "2.5"',
    valid: (value) => typeof value === 'string' && PLAIN_DECIMAL.test(value),
  },
  {
    name: 'meter_usage_timestamp',
    rule: 'must be an ISO 8601 date-time with a time zone',
    valid: (value) => value === undefined || isDateTime(value),
  },
  {
    name: 'meter_type_code',
    rule: 'must be "absolute" or "delta"',
    valid: (value) => value === undefined || value === 'absolute' || value === 'delta',
  },
]
