/**
 * A B2B API: callers sign in with Kinde and send their access token; @fastify/jwt verifies it
 * (RS256, keys from Kinde's JWKS through get-jwks) and kinde-metering bills the organization in
 * the token (`org_code`). No `customer` option is needed: by default the plugin bills
 * `request.user.org_code` as `{ orgCode }` (else `request.user.sub` as `{ userId }`), and
 * resolves it to the organization's agreement when it flushes, never on the request path.
 *
 *   npm run build && npx tsx examples/b2b-jwt.ts
 *   # then run one of the curl commands it prints: each carries an access token signed by the
 *   # local emulator for a user of organization org_acme or org_globex.
 *
 * Against your Kinde set KINDE_DOMAIN (e.g. acme.kinde.com: token issuer, JWKS and Management
 * API), KINDE_AUDIENCE (the audience of your API as registered in Kinde: tokens for other APIs are
 * refused), KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET (an M2M application
 * with the scopes create:meter_usage, read:organizations and read:billing_agreements).
 */
import fastifyJwt, { type TokenOrHeader } from '@fastify/jwt'
import Fastify, { type FastifyRequest } from 'fastify'
import buildGetJwks from 'get-jwks'
import { kindeMetering } from 'kinde-metering'
import { EMULATOR_USER_AUDIENCE } from 'kinde-metering/testing'
import { exampleKinde, examplePort, runWhenExecuted, type RunningExample } from './runner.js'

/** The claims of a Kinde access token this API reads. */
interface KindeAccessToken {
  /** The user's id, `kp_…`. */
  sub: string
  /** The organization the user signed in to, `org_…`. */
  org_code?: string
}

/**
 * The verified token of a request. An app would rather type `request.user` once, by augmenting
 * `FastifyJWT` of '@fastify/jwt' with `{ payload: KindeAccessToken, user: KindeAccessToken }`;
 * this file shares one type-check with the whole repository, so it keeps its types local.
 */
const claims = (request: FastifyRequest): KindeAccessToken => request.user as KindeAccessToken

const PLAN_FEATURES = ['api_calls', 'reports', 'report_pages']

export async function start (env = process.env): Promise<RunningExample> {
  const kinde = await exampleKinde({
    organizations: [
      { code: 'org_acme', customerId: 'customer_acme' },
      { code: 'org_globex', customerId: 'customer_globex' }
    ],
    agreements: [
      { id: 'agreement_acme', customerId: 'customer_acme', features: PLAN_FEATURES },
      { id: 'agreement_globex', customerId: 'customer_globex', features: PLAN_FEATURES }
    ]
  }, env)
  const audience = kinde.emulator === undefined ? env.KINDE_AUDIENCE : EMULATOR_USER_AUDIENCE
  if (audience === undefined || audience === '') throw new Error('set KINDE_AUDIENCE to the audience of your API in Kinde')

  const app = Fastify({ logger: { level: 'warn' } })

  // Keys are fetched from the configured Kinde only, never from an issuer a token names.
  const jwks = buildGetJwks({ issuersWhitelist: [kinde.url] })
  await app.register(fastifyJwt, {
    decode: { complete: true },
    secret: async (_request: FastifyRequest, token: TokenOrHeader) => {
      const { kid, alg } = 'header' in token ? token.header : token
      return jwks.getPublicKey({ domain: kinde.url, kid, alg })
    },
    verify: { algorithms: ['RS256'], allowedIss: kinde.url, allowedAud: audience }
  })
  // Every route needs a valid token; a missing, expired or foreign one is answered 401.
  app.addHook('onRequest', async request => { await request.jwtVerify() })

  await app.register(kindeMetering, kinde.connection)

  app.get('/api/projects', { config: { meter: 'api_calls' } }, async request => ({
    organization: claims(request).org_code,
    projects: [{ id: 1, name: 'Website' }, { id: 2, name: 'Billing' }]
  }))

  // Two meters on one route: +1 report, and the pages it rendered (read from the request body).
  app.post('/api/reports', {
    schema: { body: { type: 'object', required: ['pages'], properties: { pages: { type: 'integer', minimum: 1, maximum: 500 } } } },
    config: { meter: ['reports', { feature: 'report_pages', value: request => (request.body as { pages: number }).pages }] }
  }, async (request, reply) => reply.code(201).send({ organization: claims(request).org_code, status: 'rendering' }))

  const url = await app.listen({ host: '127.0.0.1', port: examplePort(env) })
  const tries: Record<string, string> = {}
  if (kinde.emulator !== undefined) {
    for (const org of ['org_acme', 'org_globex']) {
      const token = kinde.emulator.mintAccessToken({ sub: `kp_${org.slice(4)}_admin`, org_code: org })
      tries[org] = `curl -H 'authorization: Bearer ${token}' ${url}/api/projects`
    }
  }
  return { app, url, kinde, try: tries }
}

runWhenExecuted(import.meta.url, () => start())
