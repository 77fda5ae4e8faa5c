// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/** The words of `kinde-metering replay`: its usage text, and the arguments read from them. */
import { parseArgs } from 'node:util'
import { UsageError } from './command.js'
import type { DropReason } from '../core/usage/types.js'

/** Usage text of the subcommand. */
export const REPLAY_USAGE = `Usage: kinde-metering replay <dir> [--reason R]... [--dry-run] [--json]
                             [--domain D] [--client-id ID] [--client-secret S]
Sends the records of a dead-letter directory to Kinde again; records Kinde accepts are never sent again.
  --reason R       only records dropped for R (shutdown, rejected, ambiguous, no_agreement, overflow); repeatable
  --dry-run        print what would be sent; send nothing
  --json           print the outcome as one JSON object
  --domain, --client-id, --client-secret
                   default: KINDE_DOMAIN, KINDE_MANAGEMENT_CLIENT_ID, KINDE_MANAGEMENT_CLIENT_SECRET
Exit status: 0 when no selected record remains undelivered, 1 otherwise, 2 for a usage error.
`

const REASONS: readonly DropReason[] = ['shutdown', 'rejected', 'ambiguous', 'no_agreement', 'overflow']

/** What `replay` was asked to do. */
export interface ReplayArgs {
  dir: string
  reasons: Set<DropReason>
  dryRun: boolean
  json: boolean
  domain?: string
  clientId?: string
  clientSecret?: string
}

/**
 * Reads `argv` (the words after `replay`).
 * @throws UsageError for an unknown flag, not exactly one directory, or an unknown reason.
 */
export function parseReplayArgs (argv: string[]): ReplayArgs {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        reason: { type: 'string', multiple: true },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        domain: { type: 'string' },
        'client-id': { type: 'string' },
        'client-secret': { type: 'string' }
      }
    })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new UsageError(`expected one dead-letter directory, got ${positionals.length}`)
  const reasons = new Set<DropReason>()
  for (const reason of values.reason ?? []) {
    if (!REASONS.includes(reason as DropReason)) throw new UsageError(`--reason must be one of ${REASONS.join(', ')}, got ${JSON.stringify(reason)}`)
    reasons.add(reason as DropReason)
  }
  return {
    dir: positionals[0],
    reasons,
    dryRun: values['dry-run'] === true,
    json: values.json === true,
    domain: values.domain,
    clientId: values['client-id'],
    clientSecret: values['client-secret']
  }
}
