/**
 * The Kinde emulator's entry point: `startKindeEmulator` and the public API it returns.
 *
 * A local Kinde emulator: a real HTTP server on 127.0.0.1 that answers the parts of Kinde's
 * Management API that kinde-metering uses (M2M tokens, meter usage, user / organization /
 * agreement look-ups, JWKS), with the status codes and bodies documented by Kinde, plus
 * injectable faults so clients can be tested against throttling, outages and lost answers.
 *
 * This module puts the parts together behind the public {@link KindeEmulator}: `server.ts` carries
 * each request through rate limit, faults and authorization to a route in `routes/`, which reads
 * and changes the business data (`directory.ts`), the issued tokens (`m2m-tokens.ts`) and the
 * usage received (`usage-ledger.ts`).
 * @module
 */
import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { Directory } from './directory.js'
import { FaultRules } from './faults.js'
import { sharedSigningKey, signJwt, type SigningKey } from './jwt.js'
import { M2MTokens, type M2MApplication } from './m2m-tokens.js'
import { TokenBucket } from './rate-limit.js'
import type { Endpoint } from './route.js'
import { kindeRoutes } from './routes/table.js'
import { listen, RequestPipeline } from './server.js'
import type {
  EmulatorAgreement,
  EmulatorOptions,
  EmulatorOrganization,
  EmulatorUser,
  FaultSpec,
  InjectedFault,
  KindeEmulator,
  ReceivedRecord,
} from './types.js'
import { UsageLedger } from './usage-ledger.js'

export type * from './types.js'

/** Default `aud` of tokens from {@link KindeEmulator.mintAccessToken}. */
export const EMULATOR_USER_AUDIENCE = 'emulator-api'

const DEFAULT_SCOPES = ['create:meter_usage', 'read:users', 'read:organizations', 'read:billing_agreements']

/**
 * Starts an emulator on 127.0.0.1.
 * @param options - identity, data, token lifetime, paging, fault seed and rate limit; all optional.
 * @returns the running emulator; close it with {@link KindeEmulator.close}.
 */
export async function startKindeEmulator(options: EmulatorOptions = {}): Promise<KindeEmulator> {
  const key = await sharedSigningKey()
  const { server, url } = await listen(options.port ?? 0)
  return new Emulator(server, url, key, options)
}

/** The running emulator: the public API over the parts it wires together at start. */
class Emulator implements KindeEmulator {
  readonly url: string
  readonly jwksUrl: string
  readonly clientId: string
  readonly clientSecret: string
  readonly records: ReceivedRecord[] = []
  readonly injected: InjectedFault[] = []
  readonly calls: Record<Endpoint, number> = {
    token: 0, meter_usage: 0, user: 0, organization: 0, agreements: 0, jwks: 0, other: 0,
  }

  readonly #key: SigningKey
  readonly #application: M2MApplication
  readonly #tokens: M2MTokens
  readonly #faults: FaultRules
  readonly #directory = new Directory()
  readonly #ledger = new UsageLedger()
  readonly #pipeline: RequestPipeline

  constructor(server: Server, url: string, key: SigningKey, options: EmulatorOptions) {
    this.url = url
    this.jwksUrl = `${url}/.well-known/jwks.json`
    this.clientId = options.clientId ?? 'emulator-client-id'
    this.clientSecret = options.clientSecret ?? 'emulator-client-secret'
    this.#key = key
    this.#application = {
      clientId: this.clientId,
      clientSecret: this.clientSecret,
      issuer: url,
      audience: `${url}/api`,
      scopes: [...(options.scopes ?? DEFAULT_SCOPES)],
      ttlSeconds: options.tokenTtlSeconds ?? 86400,
    }
    this.#tokens = new M2MTokens(this.#application, key)
    this.#faults = new FaultRules(options.seed ?? 1)
    for (const user of options.users ?? []) this.addUser(user)
    for (const organization of options.organizations ?? []) this.addOrganization(organization)
    for (const agreement of options.agreements ?? []) this.addAgreement(agreement)
    const routes = kindeRoutes({
      application: this.#application,
      tokens: this.#tokens,
      key,
      directory: this.#directory,
      ledger: this.#ledger,
      records: this.records,
      pageSize: options.pageSize ?? 10,
      createdOn: new Date().toISOString(),
    })
    this.#pipeline = new RequestPipeline(server, url, {
      routes,
      faults: this.#faults,
      limiter: options.rateLimit && new TokenBucket(options.rateLimit.requestsPerSecond),
      tokens: this.#tokens,
      calls: this.calls,
      injected: this.injected,
    })
  }

  usage(agreementId: string, feature: string): string {
    return this.#ledger.total(agreementId, feature)
  }

  fault(spec: FaultSpec): void {
    this.#faults.add(spec)
  }

  clearFaults(): void {
    this.#faults.clear()
  }

  expireTokens(): void {
    this.#tokens.expireAll()
  }

  addAgreement(a: EmulatorAgreement): void {
    this.#directory.addAgreement(a)
  }

  addUser(u: EmulatorUser): void {
    this.#directory.addUser(u)
  }

  addOrganization(o: EmulatorOrganization): void {
    this.#directory.addOrganization(o)
  }

  setScopes(scopes: string[]): void {
    this.#application.scopes = [...scopes]
  }

  mintAccessToken(claims: Parameters<KindeEmulator['mintAccessToken']>[0]): string {
    const { expiresInSeconds = 3600, aud = [EMULATOR_USER_AUDIENCE], ...rest } = claims
    const iat = Math.floor(Date.now() / 1000)
    return signJwt({ iss: this.url, aud, iat, exp: iat + expiresInSeconds, jti: randomUUID(), ...rest }, this.#key)
  }

  async close(): Promise<void> {
    await this.#pipeline.close()
  }
}
