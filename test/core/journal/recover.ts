/**
 * A process that opens a journal on a directory, takes over what dead processes left there,
 * prints `{ "recovered": [[kind, id, feature, micros, at], …] }` and closes it (unless told `open`).
 *
 * Usage: `node --import tsx test/core/journal/recover.ts <dir> [open]`; the journal tests run it
 * as another user, to see how a journal judges the locks of processes it may not signal, and with
 * `open`, which leaves the journal open, to see that nothing of it keeps the process alive.
 */
import { Journal } from '../../../lib/core/journal/journal.js'
import { resolveJournalConfig } from '../../../lib/core/config/journal-options.js'

const quiet = { debug () {}, info () {}, warn () {}, error () {} }

async function main (dir: string, leaveOpen: boolean): Promise<void> {
  const journal = new Journal(resolveJournalConfig({ dir }, false)!, false, quiet)
  const { pending } = await journal.recover()
  if (!leaveOpen) await journal.close()
  const recovered = pending.entries.map(({ kind, id, feature, micros, at }) => [kind, id, feature, String(micros), at])
  process.stdout.write(`${JSON.stringify({ recovered })}\n`)
}

// tap also loads this file as a test, without arguments: then it does nothing.
if (process.argv[2] !== undefined) await main(process.argv[2], process.argv[3] === 'open')
