// lib/doctor/: the setup check: options, connection, scopes and customers, reported without sending usage.
/**
 * The adapters' `checkSetup` option: runs the setup check in the background when the plugin
 * starts (it calls Kinde, so it is off by default and never delays start-up) and logs its summary
 * through the app's logger.
 */
import { InvalidOptionError } from '../core/report/errors.js'
import type { MeteringOptions } from '../core/config/options.js'
import type { CustomerRef, Logger } from '../core/usage/types.js'
import { checkKindeSetup } from './check-setup.js'
import { resolveTargets } from './options.js'
import type { SetupReport } from './report.js'

/** The adapters' option that runs the setup check at start. */
export interface SetupCheckOption {
  /**
   * Checks the Kinde setup once at start, as `npx kinde-metering doctor` does, and logs a summary:
   * `info` when nothing failed, `error` naming each failure and what to do. `true` checks the
   * domain, credentials and scopes; `{ features, customers }` also resolves each customer for
   * each feature. Needs `clientId` and `clientSecret` (not `accessToken`). Records no usage.
   * Default: off.
   */
  checkSetup?: boolean | { features?: string[], customers?: CustomerRef[] }
}

/** Starts the check and resolves `stop`, which abandons a check still running (nothing is logged then) and waits for it to end. */
export type StartSetupCheck = (logger: Logger) => () => Promise<void>

/**
 * Validates `checkSetup` at registration, before anything is created, and returns what starts
 * the check once the core is up (a no-op when the option is off).
 * @throws InvalidOptionError when `checkSetup` is invalid.
 */
export function resolveSetupCheck (options: MeteringOptions<any> & SetupCheckOption): StartSetupCheck {
  const option = options.checkSetup
  if (option === undefined || option === false) return () => async () => {}
  if (option !== true && (option === null || typeof option !== 'object')) {
    throw new InvalidOptionError('checkSetup', 'must be true, false or { features, customers }')
  }
  if (options.accessToken !== undefined) {
    throw new InvalidOptionError('checkSetup', 'checks the client credentials (clientId, clientSecret), and cannot be used with accessToken')
  }
  const targets = option === true ? {} : resolveTargets(option, 'checkSetup.')
  const { domain, clientId, clientSecret, requestTimeout } = options
  return logger => {
    const abort = new AbortController()
    const running = checkKindeSetup({ domain, clientId, clientSecret, requestTimeout, ...targets, signal: abort.signal }).then(report => {
      if (!abort.signal.aborted) logSummary(report, logger)
    })
    return async () => {
      abort.abort()
      await running
    }
  }
}

function logSummary (report: SetupReport, logger: Logger): void {
  const { pass, fail, warn } = report.counts
  const counts = `${pass} passed, ${fail} failed, ${warn} could not be verified`
  if (report.ok) {
    logger.info({ setupCheck: report }, `kinde-metering: setup check of ${String(report.origin)}: ${counts}`)
    return
  }
  const failures = report.checks.filter(check => check.status === 'fail').map(check => `${check.name}: ${check.message} (${String(check.fix)})`)
  logger.error({ setupCheck: report }, `kinde-metering: setup check failed (${counts}): ${failures.join('; ')}`)
}
