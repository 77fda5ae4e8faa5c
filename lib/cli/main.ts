#!/usr/bin/env node
/**
 * The `kinde-metering` command: dispatches to its subcommands, and exits with their status.
 */
import { replay } from './replay.js'

const USAGE = 'Usage: kinde-metering replay <dir> [--reason R]... [--dry-run] [--json]\n'

const io = { stdout: process.stdout, stderr: process.stderr, env: process.env }

async function main ([command, ...rest]: string[]): Promise<number> {
  if (command === 'replay') return await replay(rest, io)
  io.stderr.write(`kinde-metering: unknown command ${JSON.stringify(command ?? '')}\n${USAGE}`)
  return 2
}

main(process.argv.slice(2)).then(code => { process.exitCode = code }, (error: Error) => {
  io.stderr.write(`kinde-metering: ${error.message}\n`)
  process.exitCode = 1
})
