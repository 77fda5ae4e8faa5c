/**
 * Preloaded into every test process of a mutation run (stryker.config.mjs). Stryker makes its
 * sandbox with mkdtemp, so only its owner may enter it; test/core/journal/journal.test.ts, run as
 * root, starts a journal as `nobody` (a lock of another user's process), and that child must read
 * the sandbox's files as the project's own folder lets it.
 */
const { chmodSync, statSync } = require('node:fs')

if ((statSync('.').mode & 0o005) !== 0o005) chmodSync('.', 0o755)
