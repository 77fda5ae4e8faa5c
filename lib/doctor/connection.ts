// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * The first two checks, made by one token request through the plugin's own client: the domain
 * (well formed, and answering as a Kinde business) and the credentials (a token is issued).
 */
import { InvalidOptionError, TokenError } from '../core/report/errors.js'
import { KindeHttp } from '../core/kinde/http.js'
import { KindeApi } from '../core/kinde/api.js'
import { resolveConfig, resolveOrigin } from '../core/config/options.js'
import { TokenProvider } from '../core/kinde/token.js'
import type { SetupCheckOptions } from './options.js'
import type { SetupCheck } from './report.js'

/** A Kinde client holding a token, for the checks that follow. */
export interface KindeSession {
  api: KindeApi
  tokens: TokenProvider
}

/** Where connection checks got to: the origin once the domain is well formed, the client secret once known, the session once a token was issued. */
export interface Connection {
  origin?: string
  secret?: string
  session?: KindeSession
  /** Closes the connections to Kinde; idempotent. */
  close: () => Promise<void>
}

const BUSINESS_DOMAIN_FIX = 'use your Kinde business domain, https://<your_subdomain>.kinde.com (Kinde: Settings > Details): custom domains do not serve the Management API'
const APP_FIX = 'in Kinde, check that this is a machine-to-machine application authorized for the Kinde Management API (Settings > APIs > Kinde Management API > Applications)'

/**
 * Checks the domain and the credentials, pushing one check for each onto `checks`.
 * @throws InvalidOptionError when `requestTimeout` is invalid.
 */
export async function connect (options: SetupCheckOptions, checks: SetupCheck[]): Promise<Connection> {
  const env = options.env ?? process.env
  const closed: Connection = { close: async () => {} }
  let origin: string
  try {
    origin = resolveOrigin(options.domain ?? env.KINDE_DOMAIN)
  } catch (error) {
    checks.push({ name: 'domain', status: 'fail', message: withoutPrefix(error as Error), fix: 'pass --domain (or set KINDE_DOMAIN) to https://<your_subdomain>.kinde.com' })
    return closed
  }
  let config
  try {
    config = resolveConfig({ domain: origin, clientId: options.clientId, clientSecret: options.clientSecret, requestTimeout: options.requestTimeout }, env)
  } catch (error) {
    const option = (error as InvalidOptionError).option
    if (option !== 'clientId' && option !== 'clientSecret') throw error
    checks.push({ name: 'domain', status: 'warn', message: `${origin} is well formed, but was not asked for a token: no credentials to ask with` })
    const [what, flag] = option === 'clientId'
      ? ['client id', '--client-id (or set KINDE_MANAGEMENT_CLIENT_ID)']
      : ['client secret', '--client-secret (or set KINDE_MANAGEMENT_CLIENT_SECRET)']
    checks.push({ name: 'credentials', status: 'fail', message: `no ${what} given`, fix: `pass ${flag}, from the M2M application's details in Kinde` })
    return { ...closed, origin }
  }
  const { clientId, clientSecret } = config.credentials!
  const http = new KindeHttp(origin, { connections: 2, timeout: config.requestTimeout })
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => (closing ??= http.close())
  // Closing the pool fails whatever is in flight at once: that is how an abort stops the checks.
  options.signal?.addEventListener('abort', () => { void close() }, { once: true })
  const connection: Connection = { origin, secret: clientSecret, close }
  const tokens = new TokenProvider(config, http)
  try {
    await tokens.get()
  } catch (error) {
    checks.push(...tokenRefused(error as TokenError, origin, clientId))
    return connection
  }
  checks.push({ name: 'domain', status: 'pass', message: `${origin} answers as a Kinde business` })
  checks.push({ name: 'credentials', status: 'pass', message: `Kinde issued a token to client id ${clientId}` })
  return { ...connection, session: { api: new KindeApi(http, tokens), tokens } }
}

/** The checks a refused or failed token request makes: which of domain or credentials is at fault. */
function tokenRefused (error: TokenError, origin: string, clientId: string): SetupCheck[] {
  if (error.status === undefined) {
    return [{ name: 'domain', status: 'fail', message: `${origin} could not be reached: ${(error.cause as Error).message}`, fix: 'check the domain for typos, and that this machine can reach it' }]
  }
  if (error.oauthError === undefined) {
    if (error.status >= 500) {
      return [{ name: 'domain', status: 'fail', message: `${origin}/oauth2/token answered HTTP ${error.status}: Kinde is unavailable, or this is not a Kinde domain`, fix: `try again shortly; if it persists, ${BUSINESS_DOMAIN_FIX}` }]
    }
    return [{ name: 'domain', status: 'fail', message: `${origin} is not a Kinde business domain: its token endpoint answered HTTP ${error.status} without an OAuth answer (a custom domain, or a typo?)`, fix: BUSINESS_DOMAIN_FIX }]
  }
  const domain: SetupCheck = { name: 'domain', status: 'pass', message: `${origin} answers as a Kinde business` }
  if (error.oauthError === 'invalid_client') {
    return [domain, {
      name: 'credentials',
      status: 'fail',
      message: `Kinde refused client id ${clientId} with the client secret given (invalid_client)`,
      fix: 'check the client id (--client-id, KINDE_MANAGEMENT_CLIENT_ID) and the client secret (--client-secret, KINDE_MANAGEMENT_CLIENT_SECRET) against the M2M application\'s details in Kinde'
    }]
  }
  return [domain, { name: 'credentials', status: 'fail', message: `Kinde refused a token to client id ${clientId}: ${withoutPrefix(error)}`, fix: APP_FIX }]
}

function withoutPrefix (error: Error): string {
  return error.message.replace(/^kinde-metering: /, '')
}
