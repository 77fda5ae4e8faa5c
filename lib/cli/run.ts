/**
 * The `kinde-metering` command line: finds the subcommand, runs it, and turns a wrong command
 * line into its usage on stderr and exit code 2.
 */
import { EXIT, UsageError, type CliIo } from './command.js'
import { COMMANDS } from './commands.js'

const USAGE = `Usage: kinde-metering <command> [options]

Commands:
${Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(10)}${command.summary}`).join('\n')}

Run \`kinde-metering <command> --help\` for a command's options.
`

/** Runs `kinde-metering` with `argv` (the arguments after the program name); resolves the exit code. */
export async function runCli (argv: string[], io: CliIo): Promise<number> {
  const [name, ...args] = argv
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(USAGE)
    return EXIT.ok
  }
  const command = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (command === undefined) {
    io.stderr.write(`${name === undefined ? 'kinde-metering: a command is required' : `kinde-metering: unknown command "${name}"`}\n\n${USAGE}`)
    return EXIT.usage
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout.write(command.usage)
    return EXIT.ok
  }
  try {
    return await command.run(args, io)
  } catch (error) {
    const code = (error as { code?: unknown }).code
    if (!(error instanceof UsageError) && !(typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_'))) throw error
    io.stderr.write(`kinde-metering ${name}: ${(error as Error).message}\n\n${command.usage}`)
    return EXIT.usage
  }
}
