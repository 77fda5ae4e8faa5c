#!/usr/bin/env node
// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/** The `kinde-metering` executable (package.json `bin`). */
import { runCli } from './run.js'

void runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(code => {
  process.exitCode = code
})
