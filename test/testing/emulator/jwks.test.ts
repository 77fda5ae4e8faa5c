/**
 * The JWKS and the RS256 tokens it verifies (routes/jwks.ts, jwt.ts): minted user tokens and M2M
 * tokens.
 */
import t from 'tap'
import { EMULATOR_USER_AUDIENCE } from '../../../lib/testing.js'
import { start, answer, getToken, verifyJwt } from '../../helpers/emulator.js'

t.test('tokens are RS256 JWTs verifiable with the JWKS', async (t) => {
  t.test('the JWKS is served at both well-known paths', async (t) => {
    const kinde = await start(t)
    t.equal(kinde.jwksUrl, `${kinde.url}/.well-known/jwks.json`)
    const jwks = await answer(await fetch(kinde.jwksUrl))
    t.match(jwks.body, { keys: [{ kty: 'RSA', alg: 'RS256', use: 'sig', kid: String, n: String, e: 'AQAB' }] })
    t.same((await answer(await fetch(`${kinde.url}/.well-known/jwks`))).body, jwks.body)
    t.equal(kinde.calls.jwks, 2)
  })

  t.test('a minted user token carries Kinde\'s claims and verifies', async (t) => {
    const kinde = await start(t)
    const jwks = (await answer(await fetch(kinde.jwksUrl))).body
    const claims = verifyJwt(kinde.mintAccessToken({ sub: 'kp_1', org_code: 'org_1' }), jwks)
    t.match(claims, { iss: kinde.url, sub: 'kp_1', org_code: 'org_1', aud: [EMULATOR_USER_AUDIENCE], jti: String })
    t.equal(claims.exp - claims.iat, 3600)
    t.ok(Math.abs(claims.iat - Date.now() / 1000) < 5)
    const custom = verifyJwt(kinde.mintAccessToken({ sub: 'kp_2', aud: 'my-api', expiresInSeconds: -10, scp: ['openid'] }), jwks)
    t.match(custom, { sub: 'kp_2', aud: 'my-api', scp: ['openid'] })
    t.ok(custom.exp < Date.now() / 1000, 'a negative lifetime gives an expired token')
  })

  t.test('a tampered token does not verify', async (t) => {
    const kinde = await start(t)
    const jwks = (await answer(await fetch(kinde.jwksUrl))).body
    const [header, , signature] = kinde.mintAccessToken({ sub: 'kp_1' }).split('.')
    const forged = Buffer.from(JSON.stringify({ sub: 'kp_admin', iss: kinde.url })).toString('base64url')
    t.equal(verifyJwt(`${header}.${forged}.${signature}`, jwks), undefined)
  })

  t.test('M2M tokens are JWTs for the API audience', async (t) => {
    const kinde = await start(t)
    const jwks = (await answer(await fetch(kinde.jwksUrl))).body
    const claims = verifyJwt(await getToken(kinde, { scope: 'read:users' }), jwks)
    t.match(claims, { iss: kinde.url, aud: [`${kinde.url}/api`], azp: kinde.clientId, scp: ['read:users'] })
  })
})
