// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/**
 * What a `kinde-metering` subcommand is: a module exporting one {@link CliCommand}, listed in
 * commands.ts.
 */

/** Where a command writes, and the environment it reads. */
export interface CliIo {
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown }
  env: NodeJS.ProcessEnv
}

/** Exit codes of every command: 0 all good, 1 something to fix, 2 the command line itself is wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const

/** One subcommand. */
export interface CliCommand {
  /** One line for the command list of `kinde-metering --help`. */
  summary: string
  /** Its own `--help` text. */
  usage: string
  /**
   * Runs with the arguments after the subcommand's name; resolves the exit code.
   * @throws UsageError (or the `ERR_PARSE_ARGS_*` errors of `node:util` parseArgs) for a wrong command line: exit 2.
   */
  run: (args: string[], io: CliIo) => Promise<number>
}

/** A command line that cannot be run as written. */
export class UsageError extends Error {}
