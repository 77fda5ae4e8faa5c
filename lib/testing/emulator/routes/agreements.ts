/**
 * `GET /api/v1/billing/agreements`: a customer's agreements, filtered by feature and paged.
 *
 * Expired agreements are listed too; paging follows `page_size`, `starting_after` or
 * `ending_before`, with Kinde's limits and error codes.
 * @module
 */
import type { Directory, StoredAgreement } from '../directory.js'
import { kindeError, ok, type Reply } from '../reply.js'
import type { Exchange, Route } from '../route.js'
import { requiredParam } from './look-up.js'

/** Kinde rejects larger pages with PAGE_SIZE_LIMIT_EXCEEDED. */
const MAX_PAGE_SIZE = 100

/**
 * The agreement listing route.
 * @param defaultPageSize - page size when `page_size` is not sent.
 */
export function agreementsRoute(directory: Directory, defaultPageSize: number): Route {
  return {
    endpoint: 'agreements',
    scope: 'read:billing_agreements',
    handle(exchange: Exchange): Reply {
      const query = exchange.url.searchParams
      const customerId = requiredParam(exchange.url, 'customer_id')
      if (typeof customerId !== 'string') return customerId
      if (!directory.isCustomer(customerId)) return kindeError(400, 'CUSTOMER_NOT_FOUND', `No billing customer ${customerId}`)
      const pageSize = parsePageSize(query.get('page_size'), defaultPageSize)
      if (typeof pageSize !== 'number') return pageSize
      const feature = query.get('feature_code')
      const matching = directory.agreementsOf(customerId).filter((a) => !feature || a.features.includes(feature))
      const page = paginate(matching, query.get('starting_after'), query.get('ending_before'), pageSize)
      if ('status' in page) return page
      return ok({ code: 'OK', message: 'Success', has_more: page.hasMore, agreements: page.items.map(agreementBody) })
    },
  }
}

function agreementBody(a: StoredAgreement): unknown {
  return {
    id: a.id,
    plan_code: a.planCode,
    expires_on: a.expiresOn,
    billing_group_id: null,
    entitlements: a.features.map((feature) => ({ feature_code: feature, entitlement_id: `entitlement_${a.id}_${feature}` })),
  }
}

function parsePageSize(text: string | null, fallback: number): number | Reply {
  if (text === null) return fallback
  const size = /^\d+$/.test(text) ? Number(text) : 0
  if (size < 1) return kindeError(400, 'INVALID_REQUEST', 'page_size must be a positive integer')
  if (size > MAX_PAGE_SIZE) return kindeError(400, 'PAGE_SIZE_LIMIT_EXCEEDED', `Page size cannot be greater than ${MAX_PAGE_SIZE}`)
  return size
}

/** One page of `items` after or before the agreement id given as cursor. */
function paginate(
  items: StoredAgreement[], startingAfter: string | null, endingBefore: string | null, size: number,
): { items: StoredAgreement[]; hasMore: boolean } | Reply {
  if (startingAfter && endingBefore) {
    return kindeError(400, 'TOO_MANY_PARAMETERS', 'Only one of starting_after or ending_before may be specified')
  }
  const cursor = startingAfter || endingBefore
  if (!cursor) return { items: items.slice(0, size), hasMore: items.length > size }
  const at = items.findIndex((a) => a.id === cursor)
  if (at < 0) return kindeError(400, 'INVALID_REQUEST', `No agreement ${cursor} in this listing`)
  if (startingAfter) return { items: items.slice(at + 1, at + 1 + size), hasMore: items.length > at + 1 + size }
  const start = Math.max(0, at - size)
  return { items: items.slice(start, at), hasMore: start > 0 }
}
