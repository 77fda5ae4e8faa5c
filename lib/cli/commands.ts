// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/** The subcommands of `kinde-metering`, by name: adding one is its module plus one line here. */
import type { CliCommand } from './command.js'
import { doctor } from './doctor.js'
import { replayCommand } from './replay.js'

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: Readonly<Record<string, CliCommand>> = {
  doctor,
  replay: replayCommand
}
