// lib/core/journal/: pending usage kept on disk, so a killed process loses none.
/**
 * What a usage journal says, line by line, and the state it describes.
 *
 * A journal is a file of lines `<crc32 hex> <json>\n`, one per batch. The checksum and the
 * newline let replay tell a complete line from one cut short by a crash or damaged on disk; such
 * lines are skipped and counted, the others replayed. Line types:
 * - `H` header, always first: the journal's id and the ids of journals whose content it absorbed;
 * - `A` usage added (drained from the recorder);
 * - `T` usage of a record about to be sent: in flight (Kinde may apply it) until `D` or `S`;
 * - `D` usage of a record Kinde accepted: no longer pending;
 * - `S` a take settled: the usage listed was reported dropped (no longer pending); whatever
 *   else was in flight failed without being applied and is pending again.
 *
 * An absolute value (`set()`) is written with its time and a trailing `1` in every line type. It
 * replaces the pair's value when it is the later one (by time; in one millisecond, the line
 * written last), and a `D` or `S` line forgets it only if it is still the value held, so a value
 * set while an older one was being sent stays pending. Absolute values are never marked in
 * flight: sending one twice cannot count it twice, so a replay sends it again.
 */
import { crc32 } from 'node:zlib'
import { addMicros, isZero, subtractMicros, type Micros } from '../usage/decimal.js'
import type { RefKind, UsageEntry } from '../usage/types.js'

/**
 * An entry as written: kind, id, feature, micros (a string of digits beyond 2^53), for `A` (and
 * for absolute values in every line) the epoch ms, and `1` for an absolute value.
 */
type Tuple = [RefKind, string, string, number | string, number?, 1?]

/** The first line of every journal file. */
export interface JournalHeader {
  t: 'H'
  /** The journal's id: its owner's id. */
  id: string
  /** Ids of journals whose content this one took in: a copy of them left on disk is not replayed. */
  absorbed: string[]
}

/** A line after the header: usage added, being sent, delivered, or a take settled. */
export interface BodyLine {
  t: 'A' | 'T' | 'D' | 'S'
  e: Tuple[]
}

/** Any journal line. */
export type JournalLine = JournalHeader | BodyLine

const LINE_TYPES = new Set(['H', 'A', 'T', 'D', 'S'])

/** Pending usage of one pair in a journal, and how much of it a flush has taken. */
interface Held {
  kind: RefKind
  id: string
  feature: string
  micros: Micros
  at: number
  inFlight: Micros
}

/** Replayed journal lines: the header (when intact) and the count of lines skipped as damaged. */
export interface DecodedJournal {
  header: JournalHeader | undefined
  lines: BodyLine[]
  /** Lines skipped: checksum mismatch, unparsable, or cut short at the end. */
  skipped: number
}

/** Encodes one journal line, newline included. */
export function encodeLine (line: JournalLine): string {
  return encodeChecksummed(line)
}

/** Encodes any JSON value as one checksummed line, newline included (the dead letter writes these too). */
export function encodeChecksummed (value: unknown): string {
  const json = JSON.stringify(value)
  return `${checksum(json)}${json}\n`
}

/** The checksum prefix of a line: 8 hex digits and a space. */
function checksum (json: string): string {
  return `${crc32(json).toString(16).padStart(8, '0')} `
}

/** Decodes a journal file's text, skipping lines that are damaged or cut short. */
export function decodeJournal (text: string): DecodedJournal {
  const rows = text.split('\n')
  // Text after the last newline is a line whose write the crash cut short.
  let skipped = rows.pop() === '' ? 0 : 1
  let header: JournalHeader | undefined
  const lines: BodyLine[] = []
  for (const row of rows) {
    const line = decodeRow(row)
    if (line === undefined) skipped++
    else if (line.t === 'H') header = line
    else lines.push(line)
  }
  return { header, lines, skipped }
}

/**
 * A line whose checksum matches is one a journal wrote (a damaged line passes it once in four
 * billion times); one that is not JSON or of a type this version does not know is skipped.
 */
function decodeRow (row: string): JournalLine | undefined {
  const line = decodeChecksummed(row) as JournalLine | null | undefined
  return LINE_TYPES.has(line?.t as string) ? line! : undefined
}

/**
 * The value of one checksummed line (without its newline); `undefined` when the checksum does not
 * match or the text is not JSON.
 */
export function decodeChecksummed (row: string): unknown {
  const json = row.slice(9)
  if (row.slice(0, 9) !== checksum(json)) return undefined
  try {
    return JSON.parse(json)
    // Stryker disable next-line BlockStatement: a catch left empty returns undefined all the same
  } catch {
    return undefined
  }
}

/** Amounts beyond 2^53 micros are written as strings of digits. */
function tupleMicros (micros: number | string): Micros {
  return typeof micros === 'number' ? micros : BigInt(micros)
}

function min (a: Micros, b: Micros): Micros {
  // Stryker disable next-line EqualityOperator: when a equals b, either is the minimum
  return a < b ? a : b
}

function toTuple (entry: UsageEntry, withTime: boolean): Tuple {
  const micros = typeof entry.micros === 'bigint' ? entry.micros.toString() : entry.micros
  if (entry.absolute === true) return [entry.kind, entry.id, entry.feature, micros, entry.at, 1]
  return withTime ? [entry.kind, entry.id, entry.feature, micros, entry.at] : [entry.kind, entry.id, entry.feature, micros]
}

function sameMicros (a: Micros, b: Micros): boolean {
  return BigInt(a) === BigInt(b)
}

/**
 * The usage a journal holds: added and not yet delivered or dropped, and the part of it a flush
 * has taken. The live journal keeps one up to date as it writes (so it can rewrite itself in
 * one go), and replay rebuilds one from a file.
 */
export class JournalState {
  readonly #held = new Map<string, Held>()
  readonly #inFlight = new Set<Held>()
  /** Absolute values, latest per pair. */
  readonly #latest = new Map<string, UsageEntry>()

  /** Usage added. */
  add (entries: UsageEntry[]): BodyLine {
    for (const entry of entries) {
      if (entry.absolute === true) this.#set(entry.kind, entry.id, entry.feature, entry.micros, entry.at)
      else this.#add(entry.kind, entry.id, entry.feature, entry.micros, entry.at)
    }
    return { t: 'A', e: entries.map(entry => toTuple(entry, true)) }
  }

  /** Usage being sent: in flight until delivered or the take settles ({@link JournalState.settle}). */
  take (entries: UsageEntry[]): BodyLine {
    // Stryker disable next-line ConditionalExpression: a feature is summed or set, never both (feature-kinds), so a level finds no sum to mark in flight, and replay skips levels in T lines
    const summed = entries.filter(entry => entry.absolute !== true)
    for (const entry of summed) this.#take(entry.kind, entry.id, entry.feature, entry.micros)
    // Stryker disable next-line BooleanLiteral: replay reads no time in a T line; only the line's length differs
    return { t: 'T', e: summed.map(entry => toTuple(entry, false)) }
  }

  /** Usage Kinde accepted: no longer pending. */
  delivered (entries: UsageEntry[]): BodyLine {
    for (const entry of entries) this.#forgetEntry(entry)
    // Stryker disable next-line BooleanLiteral: replay reads no time of a sum in a D line (a level's is always written); only the line's length differs
    return { t: 'D', e: entries.map(entry => toTuple(entry, false)) }
  }

  /** The take settled: `dropped` was reported dropped; the rest in flight is pending again. */
  settle (dropped: UsageEntry[]): BodyLine {
    for (const entry of dropped) this.#forgetEntry(entry)
    this.#settle()
    // Stryker disable next-line BooleanLiteral: replay reads no time of a sum in an S line (a level's is always written); only the line's length differs
    return { t: 'S', e: dropped.map(entry => toTuple(entry, false)) }
  }

  /** Replays a decoded line. */
  apply (line: BodyLine): void {
    for (const [kind, id, feature, micros, at, absolute] of line.e) {
      if (absolute === 1) {
        if (line.t === 'A') this.#set(kind, id, feature, tupleMicros(micros), at as number)
        // Stryker disable next-line ConditionalExpression: no T line holds a level (take() leaves them out), so no level reaches here from one
        else if (line.t !== 'T') this.#unset(kind, id, feature, tupleMicros(micros), at as number)
      } else if (line.t === 'A') this.#add(kind, id, feature, tupleMicros(micros), at as number)
      else if (line.t === 'T') this.#take(kind, id, feature, tupleMicros(micros))
      else this.#forget(kind, id, feature, tupleMicros(micros))
    }
    if (line.t === 'S') this.#settle()
  }

  /**
   * Pending usage, one entry per pair, and the in-flight part of each pair a flush had taken.
   * @param withoutInFlight leave the in-flight parts out of `pending` (they are to be dropped).
   */
  split (withoutInFlight: boolean): { pending: UsageEntry[], inFlight: UsageEntry[] } {
    const pending: UsageEntry[] = []
    const inFlight: UsageEntry[] = []
    for (const { kind, id, feature, micros, at, inFlight: taken } of this.#held.values()) {
      const flying = min(taken, micros)
      const kept = withoutInFlight ? subtractMicros(micros, flying) : micros
      if (!isZero(kept)) pending.push({ kind, id, feature, micros: kept, at })
      if (!isZero(flying)) inFlight.push({ kind, id, feature, micros: flying, at })
    }
    for (const entry of this.#latest.values()) pending.push({ ...entry })
    return { pending, inFlight }
  }

  /** The whole state as journal text: the header, what is pending, and what of it is in flight. */
  snapshot (header: JournalHeader): string {
    const entries: UsageEntry[] = []
    const taken: UsageEntry[] = []
    for (const held of this.#held.values()) {
      entries.push(held)
      // Stryker disable next-line ConditionalExpression: a pair written in flight by zero replays as not in flight
      if (!isZero(held.inFlight)) taken.push({ ...held, micros: held.inFlight })
    }
    entries.push(...this.#latest.values())
    let text = encodeLine(header)
    if (entries.length > 0) text += encodeLine({ t: 'A', e: entries.map(entry => toTuple(entry, true)) })
    // Stryker disable next-line BooleanLiteral: replay reads no time in a T line; only the line's length differs
    if (taken.length > 0) text += encodeLine({ t: 'T', e: taken.map(entry => toTuple(entry, false)) })
    return text
  }

  #add (kind: RefKind, id: string, feature: string, micros: Micros, at: number): void {
    const key = keyOf(kind, id, feature)
    const held = this.#held.get(key)
    if (held === undefined) {
      this.#held.set(key, { kind, id, feature, micros, at, inFlight: 0 })
      return
    }
    held.micros = addMicros(held.micros, micros)
    // Stryker disable next-line EqualityOperator: an equal time left or set is the same time
    if (at > held.at) held.at = at
  }

  /** Holds an absolute value unless the pair holds a later one; in one millisecond, the value journaled last wins. */
  #set (kind: RefKind, id: string, feature: string, micros: Micros, at: number): void {
    const key = keyOf(kind, id, feature)
    const held = this.#latest.get(key)
    if (held === undefined || at >= held.at) this.#latest.set(key, { kind, id, feature, micros, at, absolute: true })
  }

  /** Forgets an absolute value delivered or dropped, unless a value set since replaced it. */
  #unset (kind: RefKind, id: string, feature: string, micros: Micros, at: number): void {
    const key = keyOf(kind, id, feature)
    const held = this.#latest.get(key)
    if (held !== undefined && held.at === at && sameMicros(held.micros, micros)) this.#latest.delete(key)
  }

  #forgetEntry (entry: UsageEntry): void {
    if (entry.absolute === true) this.#unset(entry.kind, entry.id, entry.feature, entry.micros, entry.at)
    else this.#forget(entry.kind, entry.id, entry.feature, entry.micros)
  }

  #take (kind: RefKind, id: string, feature: string, micros: Micros): void {
    const held = this.#held.get(keyOf(kind, id, feature))
    if (held === undefined) return
    held.inFlight = addMicros(held.inFlight, micros)
    this.#inFlight.add(held)
  }

  #forget (kind: RefKind, id: string, feature: string, micros: Micros): void {
    const key = keyOf(kind, id, feature)
    const held = this.#held.get(key)
    if (held === undefined) return
    // A damaged line skipped on replay can leave less than a later line forgets: never below zero.
    held.micros = subtractMicros(held.micros, min(micros, held.micros))
    held.inFlight = subtractMicros(held.inFlight, min(micros, held.inFlight))
    if (isZero(held.micros)) {
      this.#held.delete(key)
      this.#inFlight.delete(held)
    }
  }

  #settle (): void {
    for (const held of this.#inFlight) held.inFlight = 0
    this.#inFlight.clear()
  }
}

/** A key unique per (kind, id, feature): the id's length keeps `a` + `bc` apart from `ab` + `c`. */
function keyOf (kind: RefKind, id: string, feature: string): string {
  return `${kind}${id.length}:${id}${feature}`
}
