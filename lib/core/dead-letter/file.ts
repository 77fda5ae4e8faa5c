// lib/core/dead-letter/: records that can never be delivered, kept on disk until replayed.
/**
 * What a dead-letter directory says: the records that could not be delivered, which of them a
 * replay delivered since, and why the others failed last.
 *
 * Every writer (a metering process, a replay) appends to its own file `<owner>.deadletter`, one
 * checksummed line per entry (the journal's line format), so writers never interleave and a crash
 * leaves at most a torn last line, skipped on read. Line types:
 * - `R` a record reported dropped, with every field needed to send it again;
 * - `F` records a replay sent again and that failed again: their latest reason and error;
 * - `M` records Kinde accepted on replay: never sent again.
 */
import { randomUUID } from 'node:crypto'
import { mkdir, open, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeChecksummed, encodeChecksummed } from '../journal/format.js'
import type { CustomerRef, DroppedRecord, DropReason } from '../usage/types.js'

/** A dead-lettered record, as its `R` line holds it. */
export interface DeadRecord {
  t: 'R'
  /** Unique id of the record: what `M` and `F` lines name. */
  id: string
  /** The customer as the request named it. */
  customer: CustomerRef
  /** The agreement it resolved to, when resolution got that far. */
  agreementId?: string
  feature: string
  /** Exact decimal amount. */
  value: string
  /** Meter type the value is of (`delta`). */
  meterType: string
  /** Time of the latest usage in the record, ISO 8601 UTC. */
  timestamp: string
  /** Why it was not delivered; a failed replay replaces it (see {@link FailedLine}). */
  reason: DropReason
  /** Kinde's answer, when there was one. */
  error?: DroppedRecord['error']
  /** When it was dead-lettered (or failed again), ISO 8601 UTC. */
  time: string
}

/** Records a replay sent again, which failed again. */
export interface FailedLine {
  t: 'F'
  ids: string[]
  reason: DropReason
  error?: DroppedRecord['error']
  time: string
}

/** Records Kinde accepted on replay. */
export interface ReplayedLine {
  t: 'M'
  ids: string[]
  time: string
}

/** Any dead-letter line. */
export type DeadLetterLine = DeadRecord | FailedLine | ReplayedLine

/** What a directory holds once its lines are read. */
export interface DeadLetterContents {
  /** Records not yet replayed, with their latest reason and error, in the order written. */
  records: DeadRecord[]
  /** Records already replayed. */
  replayed: number
  /** Lines skipped: torn by a crash, damaged, or of a type this version does not know. */
  skipped: number
}

/** Name of the file `owner` appends to. */
export function deadLetterFile (owner: string): string {
  return `${owner}.deadletter`
}

/** The `R` line of a record reported dropped for `reason` now. */
export function deadRecordOf (record: DroppedRecord, reason: DropReason, time: string): DeadRecord {
  const line: DeadRecord = {
    t: 'R',
    id: randomUUID(),
    customer: record.customer,
    feature: record.feature,
    value: record.value,
    meterType: record.absolute === true ? 'absolute' : 'delta',
    timestamp: record.timestamp,
    reason,
    time
  }
  // Stryker disable next-line ConditionalExpression: JSON, all that reaches the disk and the log, leaves out a key holding undefined as it does a missing one
  if (record.agreementId !== undefined) line.agreementId = record.agreementId
  // Stryker disable next-line ConditionalExpression: the same holds for an undefined error
  if (record.error !== undefined) line.error = record.error
  return line
}

/**
 * Appends `lines` to the file `name` of `dir` (both created if missing) in one write, flushed to
 * the disk before it resolves: a crash leaves at most a torn last line. The file is opened at
 * each write (drops are few): a directory removed or remounted meanwhile is made again.
 */
export async function appendDeadLetter (dir: string, name: string, lines: DeadLetterLine[]): Promise<void> {
  let text = ''
  for (const line of lines) text += encodeChecksummed(line)
  await mkdir(dir, { recursive: true })
  const handle = await open(join(dir, name), 'a')
  try {
    await handle.appendFile(text)
    await handle.datasync()
  } finally {
    await handle.close()
  }
}

/** Reads every dead-letter file in `dir`; a directory that does not exist holds nothing. */
export async function readDeadLetter (dir: string): Promise<DeadLetterContents> {
  let names: string[]
  try {
    // Stryker disable next-line MethodExpression: Node's readdir already returns names sorted (libuv's scandir sorts them); the sort keeps that order whatever the platform
    names = (await readdir(dir)).filter(name => name.endsWith('.deadletter')).sort()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], replayed: 0, skipped: 0 }
    throw error
  }
  const records = new Map<string, DeadRecord>()
  const failures: FailedLine[] = []
  const replayed = new Set<string>()
  let skipped = 0
  for (const name of names) {
    const rows = (await readFile(join(dir, name), 'utf8')).split('\n')
    // Text after the last newline is a line whose write a crash cut short.
    if (rows.pop() !== '') skipped++
    for (const row of rows) {
      const line = decodeChecksummed(row) as DeadLetterLine | null | undefined
      if (line?.t === 'R') records.set(line.id, line)
      else if (line?.t === 'F') failures.push(line)
      else if (line?.t === 'M') for (const id of line.ids) replayed.add(id)
      else skipped++
    }
  }
  // Files are read in name order, not time order: the latest failure is found by its time.
  failures.sort((a, b) => a.time.localeCompare(b.time))
  const latest = new Map<string, FailedLine>()
  for (const failure of failures) for (const id of failure.ids) latest.set(id, failure)
  for (const record of records.values()) {
    const failure = latest.get(record.id)
    if (failure === undefined) continue
    record.reason = failure.reason
    record.error = failure.error
  }
  const pending: DeadRecord[] = []
  for (const record of records.values()) if (!replayed.has(record.id)) pending.push(record)
  return { records: pending, replayed: records.size - pending.length, skipped }
}
