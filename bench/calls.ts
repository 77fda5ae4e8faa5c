/**
 * Kinde calls per 1,000,000 requests, from the aggregation model: kinde-metering sends one record
 * per distinct (customer, feature) pair that had usage in a flush interval, whatever the number of
 * requests behind it; the naive approach sends one per request and meter.
 *
 * With R requests per second, a flush every T seconds and C customers equally likely to make each
 * request, an interval holds n = R·T requests and, in expectation, C·(1 − (1 − 1/C)^n) distinct
 * customers; each brings one record per meter of the route (M). Per 1,000,000 requests:
 * M · C·(1 − (1 − 1/C)^n) · 1,000,000 / n.
 */

/** One traffic pattern and what it costs in calls to Kinde. */
export interface CallsRow {
  requestsPerSecond: number
  customers: number
  /** Meters on the route: records per request for the naive approach. */
  meters: number
  flushSeconds: number
  /** Records the naive approach sends per 1,000,000 requests (one per request and meter). */
  naive: number
  /** Records kinde-metering sends per 1,000,000 requests (expected). */
  aggregated: number
  /** Expected calls per second to Kinde from kinde-metering, averaged over an interval. */
  aggregatedPerSecond: number
}

/** Expected distinct customers among `n` requests spread uniformly over `customers`. */
export function expectedDistinct (customers: number, n: number): number {
  // 1 − (1 − 1/C)^n computed as −expm1(n·log1p(−1/C)): exact for large C and n.
  return customers * -Math.expm1(n * Math.log1p(-1 / customers))
}

/** Calls per 1,000,000 requests for one traffic pattern. */
export function callsPerMillion (requestsPerSecond: number, customers: number, meters: number, flushSeconds: number): CallsRow {
  const perInterval = requestsPerSecond * flushSeconds
  const records = meters * expectedDistinct(customers, perInterval)
  return {
    requestsPerSecond,
    customers,
    meters,
    flushSeconds,
    naive: meters * 1_000_000,
    aggregated: records * 1_000_000 / perInterval,
    aggregatedPerSecond: records / flushSeconds
  }
}

/** The patterns the README table shows: two meters per route, the default one-minute flush. */
export function benchCalls (): CallsRow[] {
  const rows: CallsRow[] = []
  for (const customers of [1_000, 100_000]) {
    for (const rate of [10, 100, 1_000, 10_000]) rows.push(callsPerMillion(rate, customers, 2, 60))
  }
  return rows
}
