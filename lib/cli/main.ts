#!/usr/bin/env node
/**
 * The `kinde-metering` command: dispatches to its subcommands.
 */
import { replay } from './replay.js'

const USAGE = 'Usage: kinde-metering replay <dir> [--reason R]... [--dry-run] [--json]\n'

const [command, ...rest] = process.argv.slice(2)
const io = { stdout: process.stdout, stderr: process.stderr, env: process.env }
const run = command === 'replay'
  ? replay(rest, io)
  : Promise.resolve(io.stderr.write(`kinde-metering: unknown command ${JSON.stringify(command ?? '')}\n${USAGE}`)).then(() => 2)
run.then(code => { process.exitCode = code }, (error: Error) => {
  io.stderr.write(`kinde-metering: ${error.message}\n`)
  process.exitCode = 1
})
