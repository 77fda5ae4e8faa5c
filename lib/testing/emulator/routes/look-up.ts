/**
 * What the look-up routes share: a required query parameter and the entity it names.
 *
 * An absent parameter or an unknown entity gets Kinde's 400; `expand=billing` asks for the
 * billing block.
 * @module
 */
import { kindeError, ok, type Reply } from '../reply.js'
import type { Endpoint, Exchange, Route } from '../route.js'

/** How one look-up route finds and shows its entity. */
export interface LookUp<T> {
  endpoint: Endpoint
  scope: string
  /** The query parameter naming the entity: `id`, `code`. */
  param: string
  find(key: string): T | undefined
  /** Kinde's answer when nothing has that key. */
  unknown(key: string): Reply
  /** The 200 body; `billing` says whether `expand` asked for the billing block. */
  body(entity: T, billing: boolean): unknown
}

/** A route answering `GET ?{param}=…[&expand=billing]` with the entity found. */
export function lookUpRoute<T>(lookUp: LookUp<T>): Route {
  return {
    endpoint: lookUp.endpoint,
    scope: lookUp.scope,
    handle(exchange: Exchange): Reply {
      const key = requiredParam(exchange.url, lookUp.param)
      if (typeof key !== 'string') return key
      const entity = lookUp.find(key)
      return entity === undefined ? lookUp.unknown(key) : ok(lookUp.body(entity, expands(exchange.url, 'billing')))
    },
  }
}

/**
 * A required query parameter.
 * @returns its value, or Kinde's 400 naming it when it is absent or empty.
 */
export function requiredParam(url: URL, name: string): string | Reply {
  return url.searchParams.get(name) || kindeError(400, 'INVALID_REQUEST', `${name} is required`)
}

/** Whether the comma-separated `expand` parameter asks for `what`. */
function expands(url: URL, what: string): boolean {
  return (url.searchParams.get('expand') ?? '').split(',').map((part) => part.trim()).includes(what)
}
