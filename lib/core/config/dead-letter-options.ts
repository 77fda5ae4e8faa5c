// lib/core/config/: options in, one frozen validated configuration out.
/**
 * Option `deadLetter`: its shape and its validation, apart from the dead letter's file I/O.
 */
import { join, resolve } from 'node:path'
import type { JournalConfig } from './journal-options.js'
import { InvalidOptionError } from '../report/errors.js'
import { rejectUnknownKeys } from './option-keys.js'

/** Option `deadLetter`: where records that could not be delivered are kept. */
export interface DeadLetterOptions {
  /** Directory of the dead-letter files, created if missing. */
  dir: string
}

/** The validated `deadLetter` option. */
export interface DeadLetterConfig {
  /** Absolute path of the directory. */
  readonly dir: string
}

/** Folder of the journal's directory the dead letter goes to by default. */
const DEAD_LETTER_IN_JOURNAL = 'dead-letter'

/**
 * Validates option `deadLetter`; with `journal` set and `deadLetter` absent, the dead letter is
 * kept in a folder of the journal's directory. `false` turns it off.
 * @throws InvalidOptionError naming `deadLetter` or `deadLetter.dir`.
 */
export function resolveDeadLetterConfig (value: unknown, journal: JournalConfig | undefined): DeadLetterConfig | undefined {
  if (value === false) return undefined
  if (value === undefined) return journal && Object.freeze({ dir: join(journal.dir, DEAD_LETTER_IN_JOURNAL) })
  if (value === null || typeof value !== 'object') throw new InvalidOptionError('deadLetter', 'must be an object such as { dir }, or false')
  rejectUnknownKeys(value, ['dir'], 'deadLetter.')
  const { dir } = value as DeadLetterOptions
  if (typeof dir !== 'string' || dir.length === 0) throw new InvalidOptionError('deadLetter.dir', 'must be a non-empty path')
  return Object.freeze({ dir: resolve(dir) })
}
