// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/**
 * The `kinde-metering` command line: finds the subcommand, runs it, and turns a wrong command
 * line into its usage on stderr and exit code 2.
 */
import { InvalidOptionError } from '../core/report/errors.js'
import { EXIT, UsageError, type CliCommand, type CliIo } from './command.js'
import { COMMANDS } from './commands.js'

function usage (commands: Readonly<Record<string, CliCommand>>): string {
  return `Usage: kinde-metering <command> [options]

Commands:
${Object.entries(commands).map(([name, command]) => `  ${name.padEnd(10)}${command.summary}`).join('\n')}

Run \`kinde-metering <command> --help\` for a command's options.
`
}

/**
 * Runs `kinde-metering` with `argv` (the arguments after the program name); resolves the exit code.
 * @param commands the subcommands by name; default {@link COMMANDS}.
 * @throws whatever a command throws that is not a wrong command line: a bug, shown as such.
 */
export async function runCli (argv: string[], io: CliIo, commands: Readonly<Record<string, CliCommand>> = COMMANDS): Promise<number> {
  const [name, ...args] = argv
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage(commands))
    return EXIT.ok
  }
  const command = name !== undefined && Object.hasOwn(commands, name) ? commands[name] : undefined
  if (command === undefined) {
    io.stderr.write(`${name === undefined ? 'kinde-metering: a command is required' : `kinde-metering: unknown command "${name}"`}\n\n${usage(commands)}`)
    return EXIT.usage
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(command.usage)
    return EXIT.ok
  }
  try {
    return await command.run(args, io)
  } catch (error) {
    // An invalid option is the command line's fault too (a feature code too long, say).
    const wrongLine = error instanceof UsageError || error instanceof InvalidOptionError ||
      String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')
    if (!wrongLine) throw error
    io.stderr.write(`kinde-metering ${name}: ${(error as Error).message}\n\n${command.usage}`)
    return EXIT.usage
  }
}
