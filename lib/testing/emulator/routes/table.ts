/**
 * The route table: each Kinde method and path the emulator serves, and the route that answers it.
 * @module
 */
import type { Directory } from '../directory.js'
import type { SigningKey } from '../jwt.js'
import type { M2MApplication, M2MTokens } from '../m2m-tokens.js'
import type { RouteTable } from '../route.js'
import type { ReceivedRecord } from '../types.js'
import type { UsageLedger } from '../usage-ledger.js'
import { agreementsRoute } from './agreements.js'
import { jwksRoute } from './jwks.js'
import { meterUsageRoute } from './meter-usage.js'
import { organizationRoute } from './organizations.js'
import { tokenRoute } from './token.js'
import { userRoute } from './users.js'

/** The state the routes read and change. */
export interface RouteState {
  application: M2MApplication
  tokens: M2MTokens
  key: SigningKey
  directory: Directory
  ledger: UsageLedger
  records: ReceivedRecord[]
  /** Page size of agreement listings when `page_size` is not sent. */
  pageSize: number
  /** ISO date-time users and organizations report as `created_on`. */
  createdOn: string
}

/** Every route the emulator serves, by `METHOD /path`. */
export function kindeRoutes(state: RouteState): RouteTable {
  const jwks = jwksRoute(state.key)
  return new Map([
    ['POST /oauth2/token', tokenRoute(state.application, state.tokens)],
    ['POST /api/v1/billing/meter_usage', meterUsageRoute(state.directory, state.ledger, state.records)],
    ['GET /api/v1/user', userRoute(state.directory, state.createdOn)],
    ['GET /api/v1/organization', organizationRoute(state.directory, state.createdOn)],
    ['GET /api/v1/billing/agreements', agreementsRoute(state.directory, state.pageSize)],
    ['GET /.well-known/jwks.json', jwks],
    ['GET /.well-known/jwks', jwks],
  ])
}
