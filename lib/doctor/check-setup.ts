// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * `checkKindeSetup()`: the checks `npx kinde-metering doctor` runs, in code, so a deploy script or
 * a health route can run them too. They record no usage: Kinde has no dry run for meter usage, so
 * only the token endpoint and read endpoints are called, with one token for every check.
 */
import { connect } from './connection.js'
import { checkCustomer } from './customers.js'
import { resolveTargets, type SetupCheckOptions } from './options.js'
import { reportOf, type SetupCheck, type SetupReport } from './report.js'
import { checkScopes } from './scopes.js'

/**
 * Checks that Kinde will accept the usage of this setup, line by line: the domain, the
 * credentials, the token's scopes, then each customer × feature. Resolves whatever Kinde answers;
 * the client secret and tokens never appear in the report.
 * @throws InvalidOptionError when `features`, `customers` or `requestTimeout` is invalid.
 */
export async function checkKindeSetup (options: SetupCheckOptions = {}): Promise<SetupReport> {
  const { features, customers } = resolveTargets(options)
  const checks: SetupCheck[] = []
  const connection = await connect(options, checks)
  try {
    const session = connection.session
    if (session !== undefined) {
      checks.push(checkScopes(session.tokens.scopes, customers))
      if (customers.length === 0 && features.length > 0) {
        checks.push({
          name: 'features',
          status: 'warn',
          message: `features ${features.join(', ')} not checked: Kinde lists features per customer agreement`,
          fix: 'name a customer (--customer) whose plan should include them'
        })
      }
      for (const customer of customers) {
        for (const feature of features) checks.push(await checkCustomer(session.api, customer, feature))
      }
    }
  } finally {
    await connection.close()
  }
  return reportOf(checks, connection.origin, connection.secret)
}
