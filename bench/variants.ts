/**
 * The measured servers' variants and what both frameworks' servers share: their configuration,
 * the figures they report after a run, and how they name the customer and meter the route.
 */
import type { MeteringStats } from '../lib/index.js'
import { BYTES_FEATURE, CUSTOMER_HEADER, FEATURES } from './customers.js'

/**
 * Fastify (`bench/server.ts`):
 * - `bare`: the route alone; the process loads nothing but Fastify, as a user's app before it
 *   adds kinde-metering;
 * - `hook`: plus an empty `onResponse` hook, the floor any hook-based plugin pays;
 * - `unmetered`: kinde-metering registered, the route meters nothing;
 * - `metered-count`: kinde-metering, the route meters one count;
 * - `metered`: kinde-metering, a count plus `responseBytes`;
 * - `rate-limit`: `@fastify/rate-limit` keyed by the same header (never reached);
 * - `naive`: one meter usage POST to Kinde per request, fire-and-forget, as one would write it
 *   without this package.
 *
 * Express (`bench/express-server.ts`): `express-bare` (nothing but Express), `express-trivial`
 * (one `app.use` that calls `next()`), `express-finish` (one `app.use` that adds a `finish`
 * listener: what metering a finished response cannot do without), `express-unmetered` (`app.use(kindeMetering(...))`, the
 * route meters nothing), `express-metered` (plus `meter([count, responseBytes])` on the route).
 */
export type Variant = 'bare' | 'hook' | 'unmetered' | 'metered-count' | 'metered' | 'rate-limit' | 'naive' |
  'express-bare' | 'express-trivial' | 'express-finish' | 'express-unmetered' | 'express-metered'

/** The script that runs a variant's server. */
export function serverScript (variant: Variant): string {
  return variant.startsWith('express-') ? 'express-server.ts' : 'server.ts'
}

/** What a server process is started with. */
export interface ServerConfig {
  variant: Variant
  kinde: { url: string, clientId: string, clientSecret: string }
}

/** What `stats` answers after a run. */
export interface ServerStats {
  /** kinde-metering: distinct (customer, feature) pairs pending, i.e. records the next flush sends. */
  pendingPairs?: number
  /** kinde-metering: usage refused or dropped (should be 0). */
  lost?: number
  /** naive: meter usage POSTs started, answered 2xx, failed, and still unanswered. */
  posts?: { started: number, ok: number, failed: number, unanswered: number }
  /** Resident memory at the end, bytes. */
  rss: number
}

/** The one meter of `metered-count`. */
export const COUNT_METER = FEATURES[0]

/** The two meters of `metered` and `express-metered`: a count, and the response's body bytes. */
export const TWO_METERS = [FEATURES[0], { feature: BYTES_FEATURE, value: 'responseBytes' as const }]

/** The customer a request names in its header, if any. */
export function customerId (headers: Record<string, string | string[] | undefined>): string | undefined {
  const id = headers[CUSTOMER_HEADER]
  return typeof id === 'string' ? id : undefined
}

/** kinde-metering's options in every metered variant: the customer from the header. */
export function meteringOptions (kinde: ServerConfig['kinde']): {
  domain: string
  clientId: string
  clientSecret: string
  customer: (request: { headers: Record<string, string | string[] | undefined> }) => { agreementId: string } | undefined
  maxPendingPairs: number
} {
  return {
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    customer: request => {
      const id = customerId(request.headers)
      return id === undefined ? undefined : { agreementId: id }
    },
    // 100,000 customers × 2 features; the default flush interval (60 s) outlasts the run.
    maxPendingPairs: 1_000_000
  }
}

/** The server's figures: pending pairs and losses when it meters. */
export function serverStats (metering: MeteringStats | undefined): ServerStats {
  const stats: ServerStats = { rss: process.memoryUsage().rss }
  if (metering !== undefined) {
    stats.pendingPairs = metering.pending.pairs
    stats.lost = Object.values(metering.refused).reduce((sum, count) => sum + count, 0) + metering.dropped.overflow.records
  }
  return stats
}
