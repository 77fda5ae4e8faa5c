// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/**
 * `kinde-metering doctor`: runs {@link checkKindeSetup} from the command line and prints one line
 * per check (✓ passed, ✗ failed with what to do, ! could not be verified), or `--json` for CI.
 * Exit code 0 when nothing failed, 1 when something did, 2 for a wrong command line.
 */
import { parseArgs } from 'node:util'
import { checkKindeSetup } from '../doctor/check-setup.js'
import type { CheckStatus, SetupReport } from '../doctor/report.js'
import { REF_FIELDS, type CustomerRef } from '../core/usage/types.js'
import { EXIT, UsageError, type CliCommand } from './command.js'

const USAGE = `Usage: kinde-metering doctor [options]

Checks that Kinde will accept this app's meter usage: the domain, the M2M credentials, the
token's scopes, and how each customer resolves to an agreement for each feature. It records no
usage: only the token endpoint and read endpoints are called.

Options:
  --domain D          Kinde business domain (default: KINDE_DOMAIN)
  --client-id I       M2M application client id (default: KINDE_MANAGEMENT_CLIENT_ID)
  --client-secret S   its client secret (default: KINDE_MANAGEMENT_CLIENT_SECRET; prefer the
                      variable: a flag is visible to other users of this machine)
  --feature CODE      a billing feature code the app meters; repeat for each
  --customer K=ID     a customer to resolve, K one of ${REF_FIELDS.join(', ')}; repeat for each
  --json              print the checks as one JSON document
  -h, --help          show this help

Exit code: 0 every check passed (warnings allowed), 1 a check failed, 2 a wrong command line.
`

const SYMBOLS: Record<CheckStatus, string> = { pass: '✓', fail: '✗', warn: '!' }

/** The `doctor` subcommand. */
export const doctor: CliCommand = {
  summary: 'check the Kinde setup before going live (records no usage)',
  usage: USAGE,
  async run (args, io) {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        domain: { type: 'string' },
        'client-id': { type: 'string' },
        'client-secret': { type: 'string' },
        feature: { type: 'string', multiple: true },
        customer: { type: 'string', multiple: true },
        json: { type: 'boolean' }
      }
    })
    const features = values.feature ?? []
    const customers = (values.customer ?? []).map(parseCustomer)
    if (customers.length > 0 && features.length === 0) throw new UsageError('--customer needs at least one --feature: a customer is resolved per feature')
    const report = await checkKindeSetup({
      domain: values.domain,
      clientId: values['client-id'],
      clientSecret: values['client-secret'],
      features,
      customers,
      env: io.env
    })
    io.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report))
    return report.ok ? EXIT.ok : EXIT.failed
  }
}

/** `userId=kp_1` → `{ userId: 'kp_1' }`. */
function parseCustomer (text: string): CustomerRef {
  const at = text.indexOf('=')
  const field = text.slice(0, at)
  const id = text.slice(at + 1)
  if (at < 1 || id === '' || !(REF_FIELDS as readonly string[]).includes(field)) {
    throw new UsageError(`--customer ${JSON.stringify(text)} must be K=ID with K one of ${REF_FIELDS.join(', ')}`)
  }
  return { [field]: id } as unknown as CustomerRef
}

/** The report as lines: a symbol, the check, what was found, and for ✗ and ! what to do. */
export function formatReport (report: SetupReport): string {
  const lines = report.checks.map(check => {
    const line = `${SYMBOLS[check.status]} ${check.name.padEnd(11)} ${check.message}`
    return check.fix === undefined ? line : `${line}\n    → ${check.fix}`
  })
  const { pass, fail, warn } = report.counts
  const verdict = report.ok ? 'nothing to fix' : 'fix the ✗ lines before going live'
  lines.push('', `${pass} passed, ${fail} failed, ${warn} could not be verified: ${verdict}`)
  return `${lines.join('\n')}\n`
}
