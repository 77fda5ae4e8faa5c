// lib/cli/: the `kinde-metering` command: argument parsing and its commands (doctor, replay).
/**
 * `kinde-metering replay <dir>`: sends the records of a dead-letter directory to Kinde again.
 *
 * It runs the plugin's own delivery (same client, token, look-ups, sums per (agreement, feature),
 * classification and retries) over the records not yet replayed. Each record Kinde accepts is
 * marked replayed in this run's own file before its worker sends anything else, so a replay
 * killed at any moment resends at most the records whose send was under way at the kill; a
 * record that fails again is noted with its latest reason and error.
 */
import { parseMicros, addMicros, formatMicros, type Micros } from '../core/usage/decimal.js'
import { appendDeadLetter, deadLetterFile, readDeadLetter, type DeadLetterLine, type DeadRecord } from '../core/dead-letter/file.js'
import { Delivery } from '../core/delivery/deliver.js'
import { DropReporter, type Undeliverable } from '../core/report/drops.js'
import { SendGate } from '../core/delivery/gate.js'
import { KindeHttp } from '../core/kinde/http.js'
import { newOwnerId } from '../core/journal/files.js'
import { KindeApi } from '../core/kinde/api.js'
import { resolveConfig, type MeteringConfig } from '../core/config/options.js'
import { AgreementResolver } from '../core/kinde/resolver.js'
import { Counters } from '../core/report/stats.js'
import { TokenProvider } from '../core/kinde/token.js'
import { UsageError, type CliCommand, type CliIo } from './command.js'
import { parseReplayArgs, REPLAY_USAGE, type ReplayArgs } from './replay-args.js'
import { REF_FIELDS, RefKind, type CustomerRef, type DropReason, type Logger, type UsageEntry } from '../core/usage/types.js'

/** The meter types this version can send. */
const SENDABLE_TYPES = new Set(['delta'])

/** Records of one (agreement or customer, feature, meter type), as printed. */
interface Group {
  /** The agreement billed, when known; else `customer`, resolved at the send. */
  agreementId?: string
  customer?: CustomerRef
  feature: string
  meterType: string
  records: number
  /** Their exact sum. */
  units: string
  /** For records that remain: why (their latest reason, and Kinde's answer). */
  why?: string
}

/** A record's part of a group, before the groups are merged. */
type Part = Omit<Group, 'records' | 'units'> & { micros: Micros }

/**
 * Runs `kinde-metering replay` with `argv` (the words after `replay`).
 * @returns the exit status: 0 nothing selected remains undelivered, 1 some does, 2 usage error.
 */
export async function replay (argv: string[], io: CliIo): Promise<number> {
  let args: ReplayArgs
  let config: MeteringConfig | undefined
  let selected: DeadRecord[]
  /** This run's own file, for its marks and notes. */
  const file = deadLetterFile(newOwnerId())
  try {
    args = parseReplayArgs(argv)
    const contents = await readDeadLetter(args.dir).catch((error: Error) => {
      throw new UsageError(`cannot read the dead letter in ${args.dir}: ${error.message}`)
    })
    selected = contents.records.filter(record => args.reasons.size === 0 || args.reasons.has(record.reason))
    // Credentials, and that marks can be written, are checked before anything is sent (and only then).
    if (!args.dryRun && selected.length > 0) {
      config = resolveConfig({ domain: args.domain, clientId: args.clientId, clientSecret: args.clientSecret }, io.env)
      await appendDeadLetter(args.dir, file, [])
    }
  } catch (error) {
    // A usage error, an unreadable directory, an InvalidOptionError naming the missing credential, a file that cannot be written.
    io.stderr.write(`kinde-metering replay: ${(error as Error).message}\n${REPLAY_USAGE}`)
    return 2
  }
  const { sendable, unsendable } = classify(selected)
  if (args.dryRun) {
    const wouldSend = mergeGroups(sendable.map(({ record, micros }) => partOf(micros, record)))
    const cannotSend = mergeGroups(unsendable)
    if (args.json) io.stdout.write(JSON.stringify({ dryRun: true, wouldSend, cannotSend }) + '\n')
    else {
      for (const group of wouldSend) io.stdout.write(`would send: ${describe(group)}\n`)
      for (const group of cannotSend) io.stdout.write(`cannot send: ${describe(group)}: ${group.why!}\n`)
    }
    return 0
  }
  const outcome = config === undefined
    ? { replayed: { records: 0, units: '0', sends: 0 }, remaining: [] }
    : await send(args.dir, file, sendable, unsendable, config, io)
  if (args.json) {
    io.stdout.write(JSON.stringify(outcome) + '\n')
  } else {
    io.stdout.write(`replayed ${outcome.replayed.records} record(s), ${outcome.replayed.units} unit(s), in ${outcome.replayed.sends} send(s)\n`)
    for (const group of outcome.remaining) io.stdout.write(`remaining: ${describe(group)}: ${group.why!}\n`)
  }
  return outcome.remaining.length === 0 ? 0 : 1
}

/** What a replay did. */
interface SendOutcome {
  replayed: { records: number, units: string, sends: number }
  remaining: Group[]
}

/** Captures what the delivery reports dropped, to note it in the dead letter; logs it as the plugin does. */
class ReplayDrops extends DropReporter {
  readonly failed: Array<{ items: Undeliverable[], reason: DropReason }> = []

  override report (items: Undeliverable[], reason: DropReason): void {
    if (items.length > 0) this.failed.push({ items, reason })
    super.report(items, reason)
  }
}

/** Records that can be sent, with their amounts, and those this version cannot send, with why. */
function classify (records: DeadRecord[]): { sendable: Array<{ record: DeadRecord, micros: Micros }>, unsendable: Part[] } {
  const sendable: Array<{ record: DeadRecord, micros: Micros }> = []
  const unsendable: Part[] = []
  for (const record of records) {
    const micros = parseMicros(record.value)
    const why = record.meterType === 'absolute'
      ? 'a level (absolute) replaces the value Kinde holds, so an old one is never resent: set the current value again with metering.set()'
      : !SENDABLE_TYPES.has(record.meterType)
          ? `meter type ${JSON.stringify(record.meterType)} cannot be sent by this version`
      : micros === -1 ? `value ${JSON.stringify(record.value)} is not a decimal amount` : undefined
    if (why === undefined) sendable.push({ record, micros })
    else unsendable.push({ ...partOf(micros === -1 ? 0 : micros, record), why })
  }
  return { sendable, unsendable }
}

/** Sends records through the plugin's delivery, marking each accepted one and noting each failed one. */
async function send (dir: string, file: string, records: Array<{ record: DeadRecord, micros: Micros }>, unsendable: Part[],
  config: MeteringConfig, io: CliIo): Promise<SendOutcome> {
  const logger = stderrLogger(io)
  const counters = new Counters()
  const http = new KindeHttp(config.origin, { connections: config.concurrency, timeout: config.requestTimeout })
  const api = new KindeApi(http, new TokenProvider(config, http))
  const drops = new ReplayDrops(counters, logger, undefined, config.agreementCacheTtl)
  const delivery = new Delivery(config, api, new AgreementResolver(api, config), new SendGate(config.maxRequestsPerSecond), counters, drops, logger)
  let writes = Promise.resolve()
  // One write at a time, in order; a failed write fails the run.
  const append = (lines: DeadLetterLine[]): Promise<void> => (writes = writes.then(() => appendDeadLetter(dir, file, lines)))

  const remaining: Part[] = [...unsendable]
  const recordOf = new Map<UsageEntry, DeadRecord>()
  const entries: UsageEntry[] = []
  for (const { record, micros } of records) {
    const entry = entryOf(record, micros)
    recordOf.set(entry, record)
    entries.push(entry)
  }
  const idsOf = (sources: UsageEntry[]): string[] => sources.map(entry => recordOf.get(entry)!.id)
  let replayedMicros: Micros = 0
  let replayedRecords = 0
  const started = Date.now()
  const result = await delivery.deliver({ entries, oldest: started }, {
    deadline: () => started + config.flushInterval,
    onAccepted: async sources => {
      await append([{ t: 'M', ids: idsOf(sources), time: new Date().toISOString() }])
      replayedRecords += sources.length
      for (const entry of sources) replayedMicros = addMicros(replayedMicros, entry.micros)
    }
  })
  const time = new Date().toISOString()
  const failed: DeadLetterLine[] = []
  for (const { items, reason } of drops.failed) {
    for (const { entry, agreementId, error } of items) {
      const record = recordOf.get(entry)!
      failed.push({ t: 'F', ids: [record.id], reason, error, time })
      remaining.push({ ...partOf(entry.micros, record, agreementId), why: whyFailed(reason, error) })
    }
  }
  for (const entry of result.leftover.entries) {
    const record = recordOf.get(entry)!
    remaining.push({
      ...partOf(entry.micros, record),
      why: `not delivered in this run (Kinde did not apply it within the retries, or a look-up failed: see above); still ${record.reason}`
    })
  }
  if (failed.length > 0) await append(failed)
  await http.close()
  return {
    replayed: { records: replayedRecords, units: formatMicros(replayedMicros), sends: result.sent },
    remaining: mergeGroups(remaining)
  }
}

/** Why a record failed again: Kinde's answer, or (no_agreement, which has none) what is missing. */
function whyFailed (reason: DropReason, error: Undeliverable['error']): string {
  if (error === undefined) return 'no_agreement: no active Kinde agreement includes this feature for this customer'
  // JSON.stringify gives undefined for an absent body, and join() leaves it out.
  return [`${reason}:`, error.message, JSON.stringify(error.body)].join(' ').trimEnd()
}

/** The entry the delivery sends for a record: its agreement when it was resolved, else its customer, re-resolved. */
function entryOf (record: DeadRecord, micros: Micros): UsageEntry {
  const at = Date.parse(record.timestamp)
  if (record.agreementId !== undefined) return { kind: RefKind.Agreement, id: record.agreementId, feature: record.feature, micros, at }
  const field = Object.keys(record.customer)[0] as typeof REF_FIELDS[number]
  return { kind: REF_FIELDS.indexOf(field) as RefKind, id: (record.customer as unknown as Record<string, string>)[field], feature: record.feature, micros, at }
}

function partOf (micros: Micros, record: DeadRecord,
  agreementId = record.agreementId ?? (record.customer as { agreementId?: string }).agreementId): Part {
  return agreementId !== undefined
    ? { agreementId, feature: record.feature, meterType: record.meterType, micros }
    : { customer: record.customer, feature: record.feature, meterType: record.meterType, micros }
}

/** Sums parts of the same (agreement or customer, feature, meter type, why), exactly. */
function mergeGroups (parts: Part[]): Group[] {
  const merged = new Map<string, Part & { records: number }>()
  for (const part of parts) {
    const key = JSON.stringify([part.agreementId, part.customer, part.feature, part.meterType, part.why])
    const known = merged.get(key)
    if (known === undefined) merged.set(key, { ...part, records: 1 })
    else {
      known.records++
      known.micros = addMicros(known.micros, part.micros)
    }
  }
  return [...merged.values()].map(({ micros, ...group }) => ({ ...group, units: formatMicros(micros) }))
}

function describe (group: Group): string {
  const who = group.agreementId !== undefined ? `agreement ${group.agreementId}` : `customer ${JSON.stringify(group.customer)}`
  return `${who}, feature ${group.feature}, ${group.meterType} ${group.units} (${group.records} record(s))`
}

/** Log entries as lines on stderr, with the error's message; delivery logs no secret. */
function stderrLogger (io: CliIo): Logger {
  const write = (level: string) => (obj: object, msg?: string) => {
    const err = (obj as { err?: Error }).err
    // join() leaves an absent message out.
    io.stderr.write(`${[`${level}:`, msg].join(' ')}${err === undefined ? '' : ` (${err.message})`}\n`)
  }
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

/** The `replay` subcommand. */
export const replayCommand: CliCommand = {
  summary: 'send the records of a dead-letter directory to Kinde again',
  usage: REPLAY_USAGE,
  run: replay
}
