/**
 * Type tests of `checkKindeSetup` and the `checkSetup` plugin option, against the built
 * declarations. See fastify.ts for how they are checked.
 */
import Fastify from 'fastify'
import kindeMetering, { checkKindeSetup, type CheckStatus, type SetupCheck, type SetupReport } from 'kinde-metering'
import { kindeMetering as expressMetering } from 'kinde-metering/express'

const isExactly = <T>(value: T): T => value

const report: Promise<SetupReport> = checkKindeSetup({ features: ['searches'], customers: [{ orgCode: 'org_1' }, { userId: 'kp_1' }] })
void report.then(({ ok, checks }) => {
  isExactly<boolean>(ok)
  const first: SetupCheck = checks[0]
  isExactly<CheckStatus>(first.status)
  isExactly<string | undefined>(first.fix)
})
void checkKindeSetup()
// @ts-expect-error a customer is a reference such as { orgCode }, not a string
void checkKindeSetup({ customers: ['org_1'] })
// @ts-expect-error features are feature codes
void checkKindeSetup({ features: 'searches' })

const app = Fastify()
void app.register(kindeMetering, { checkSetup: true })
void app.register(kindeMetering, { checkSetup: { features: ['searches'], customers: [{ customerId: 'customer_1' }] } })
// @ts-expect-error checkSetup is a boolean or { features, customers }
void app.register(kindeMetering, { checkSetup: 'yes' })
expressMetering({ checkSetup: true })
