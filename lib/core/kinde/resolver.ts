// lib/core/kinde/: talking to Kinde's Management API: connections, tokens, calls, who pays to which agreement.
/**
 * Resolves who pays to the Kinde agreement to bill, at flush time and cached, so look-ups stay
 * off the request path and out of Kinde's rate limits: about one look-up per distinct
 * (reference, feature) per TTL, concurrent look-ups of one key coalesced into one request, and
 * the last known answer served while a refresh fails.
 */
import { LRUCache } from 'lru-cache'
import type { Agreement, KindeApi } from './api.js'
import type { MeteringConfig } from '../config/options.js'
import { RefKind } from '../usage/types.js'

/** A cached answer: the id found, or `null` for "none" (cached too, so misses are not re-asked every flush). */
interface Found { id: string | null }

/** Look-ups made against Kinde, for `stats()`. */
export interface LookupCounts { users: number, organizations: number, agreements: number }

/** Maps customer references to agreement ids. */
export class AgreementResolver {
  readonly #api: KindeApi
  readonly #customers: LRUCache<string, Found>
  readonly #agreements: LRUCache<string, Found, string>
  /** Look-ups sent to Kinde so far. */
  readonly lookups: LookupCounts = { users: 0, organizations: 0, agreements: 0 }

  constructor (api: KindeApi, config: MeteringConfig) {
    this.#api = api
    const cacheOptions = {
      max: config.agreementCacheSize,
      ttl: config.agreementCacheTtl,
      // Also keeps the stale answer in the cache when its refresh fails, for the next look-up.
      allowStaleOnFetchRejection: true
    }
    this.#customers = new LRUCache<string, Found>({
      ...cacheOptions,
      fetchMethod: async (key) => {
        const id = key.slice(2)
        if (key[0] === 'u') {
          this.lookups.users++
          return { id: await this.#api.userCustomerId(id) }
        }
        this.lookups.organizations++
        return { id: await this.#api.orgCustomerId(id) }
      }
    })
    this.#agreements = new LRUCache<string, Found, string>({
      ...cacheOptions,
      fetchMethod: async (key, _stale, { context: feature }) => {
        this.lookups.agreements++
        const customerId = key.slice(0, key.length - feature.length - 1)
        return { id: activeAgreement(await this.#api.agreements(customerId, feature), feature, Date.now()) }
      }
    })
  }

  /**
   * The agreement to bill for usage of `feature` by this reference; `null` when there is none
   * (no billing customer, or no active agreement with the feature).
   * @throws when a look-up failed and nothing is cached: the usage must stay pending.
   */
  async resolve (kind: RefKind.Customer | RefKind.User | RefKind.Org, id: string, feature: string): Promise<string | null> {
    let customerId: string | null = id
    if (kind !== RefKind.Customer) {
      const status: FetchStatus = {}
      customerId = answerOf(await this.#customers.fetch(`${kind === RefKind.User ? 'u' : 'o'}:${id}`, { status }), status)
      if (customerId === null) return null
    }
    const status: FetchStatus<string> = {}
    return answerOf(await this.#agreements.fetch(`${customerId}\n${feature}`, { context: feature, status }), status)
  }
}

/**
 * What lru-cache tells of one fetch, typed with the context type of the cache it is given to.
 * With context `unknown` for the agreements' `string`, type checking passes or fails by the order
 * TypeScript checks files in (`tsc lib/core/kinde/resolver.ts` fails), and Stryker's checker
 * failed it: every mutant of this file and of token.ts was discarded as a compile error.
 */
type FetchStatus<Context = unknown> = LRUCache.Status<string, Found, Context>

/**
 * The id of a cached or fresh answer. With nothing cached to serve when the look-up fails,
 * lru-cache resolves `undefined`: the look-up's error is thrown instead, so the usage stays pending.
 */
function answerOf (found: Found | undefined, status: { fetchError?: Error }): string | null {
  // Callers that joined a look-up another started see its failure only as `undefined`.
  // Stryker disable next-line StringLiteral: a joiner resumes after the look-up's starter, whose error is the one logged and reported
  if (found === undefined) throw status.fetchError ?? new Error('kinde-metering: a concurrent look-up of the same customer failed')
  return found.id
}

/**
 * The agreement to bill: the first that includes the feature and has not expired. A customer can
 * hold expired agreements listed before the active one.
 */
export function activeAgreement (agreements: Agreement[], feature: string, now: number): string | null {
  for (const agreement of agreements) {
    const expires = agreement.expires_on == null ? Infinity : Date.parse(agreement.expires_on)
    if (!(expires > now)) continue
    if (agreement.entitlements?.some(entitlement => entitlement.feature_code === feature) === true) return agreement.id
  }
  return null
}
