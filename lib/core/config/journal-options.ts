// lib/core/config/: options in, one frozen validated configuration out.
/**
 * Option `journal`: its shape and its validation, apart from the journal's file I/O so that
 * reading the configuration never loads it.
 */
import { resolve } from 'node:path'
import { milliseconds } from './checks.js'
import { InvalidOptionError } from '../report/errors.js'
import { rejectUnknownKeys } from './option-keys.js'

/** Option `journal`: where and how often usage is journaled. */
export interface JournalOptions {
  /**
   * Directory of the journal files, created if missing. Give it to one deployment: processes
   * sharing it take over each other's journals when they die. Keep it on a local disk of the
   * machine (or the container's volume) that restarts the process.
   */
  dir: string
  /**
   * Milliseconds between appends of recorded usage (one write per interval, off the request
   * path): what a killed process can lose at most. Default 100.
   */
  syncInterval?: number
  /**
   * Whether each write is flushed to the disk (`fdatasync`) before it counts as done, so that a
   * machine crash or power loss, not only a killed process, loses at most one `syncInterval`.
   * Costs a disk flush per write. Default false.
   */
  fsync?: boolean
}

/** The validated `journal` option. */
export interface JournalConfig {
  /** Absolute path of the directory. */
  readonly dir: string
  /** Milliseconds between appends. */
  readonly syncInterval: number
  /** Whether writes are flushed to the disk. */
  readonly fsync: boolean
}

/**
 * Validates option `journal`.
 * @throws InvalidOptionError naming `journal`, `journal.dir`, `journal.syncInterval`, `journal.fsync` or an unknown `journal.` key.
 */
export function resolveJournalConfig (value: unknown, shared: boolean): JournalConfig | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object') throw new InvalidOptionError('journal', 'must be an object such as { dir }')
  if (shared) {
    throw new InvalidOptionError('journal', 'cannot be combined with a shared store: the store already keeps pending usage outside this process')
  }
  rejectUnknownKeys(value, ['dir', 'syncInterval', 'fsync'] satisfies Array<keyof JournalOptions>, 'journal.')
  const { dir, syncInterval = 100, fsync = false } = value as JournalOptions
  if (typeof dir !== 'string' || dir.length === 0) throw new InvalidOptionError('journal.dir', 'must be a non-empty path')
  milliseconds('journal.syncInterval', syncInterval, 100)
  if (typeof fsync !== 'boolean') throw new InvalidOptionError('journal.fsync', 'must be true or false')
  return Object.freeze({ dir: resolve(dir), syncInterval, fsync })
}

/** How often this process proves its lock alive, when a lock counts as abandoned, how often a failing disk is retried. */
export interface JournalTiming {
  /** Milliseconds between lock refreshes; each also retries a failing journal. Default 10,000. */
  heartbeatMs: number
  /** Milliseconds without refresh after which a lock is abandoned. Default 60,000. */
  staleMs: number
  /** Milliseconds after a failed write before new usage tries a rewrite again. Default 1,000. */
  retryMs: number
}

/** The timing of every journal outside tests. */
export const DEFAULT_TIMING: JournalTiming = { heartbeatMs: 10_000, staleMs: 60_000, retryMs: 1_000 }
