/** The markdown report: one block per section, ready for the README. */
import type { CallsRow } from './calls.js'
import type { OverheadRow } from './overhead.js'
import type { DeliveryRow, RecordingRow } from './sections.js'
import type { Spread } from './stats.js'
import { genericTable, num, range, table } from './table.js'
import { basisOf, limitedBy, type Target } from './targets.js'

/** A share (0…1) as a percentage. */
function percent (s: Spread): string {
  return `${range({ ...s, median: s.median * 100, min: s.min * 100, max: s.max * 100 })}%`
}

/** The run's header: machine, pinning, load, where the package came from. */
export function headerBlock (info: { cpus: number, cpuModel: string, pinned: boolean, from: string }, load: { before: number[], after: number[] },
  seconds: number, quick: boolean): string {
  return `## Benchmarks${quick ? ' (quick smoke run: timings mean nothing)' : ''}\n\n` +
    `${info.cpus} × ${info.cpuModel}, Node ${process.version}; ${info.pinned ? 'server pinned to core 0, load generator and emulator to core 1' : 'not pinned'}; ` +
    `load average ${load.before[0].toFixed(2)} before, ${load.after[0].toFixed(2)} after; kinde-metering from ${info.from === 'dist' ? 'dist/ (the build)' : 'lib/ (sources)'}; ` +
    `${num(seconds)} s in all.`
}

/** One framework's rows, ratios to its bare server. */
function overheadTable (rows: OverheadRow[]): string {
  return table(['server', 'req/s', '× bare', 'p99 ms', '× bare', 'server CPU µs/request', 'µs/request over bare', 'core busy: server / autocannon'],
    rows.map(row => [
      row.label, range(row.requestsPerSecond), range(row.throughputRatio, 2), range(row.p99Ms), range(row.p99Ratio, 2),
      range(row.serverCpuMicros, 1), range(row.extraCpuMicros, 1), `${percent(row.serverCpuShare)} / ${percent(row.loadCpuShare)}`
    ]))
}

export function overheadBlock (rows: OverheadRow[], plan: { connections: number, warmupSeconds: number, seconds: number, rounds: number }): string {
  const basis = basisOf(rows)
  const caution = basis.on === 'nothing'
    ? `\n\n**Caution:** ${basis.why}, so req/s and p99 reflect the machine more than the servers.`
    : basis.on === 'CPU µs/request'
      ? `\n\n**Note:** ${basis.why}; the servers' CPU µs/request ratios are the steadier comparison.`
      : ''
  const naive = rows.find(row => row.case === 'naive')?.server.posts
  const fastify = rows.filter(row => row.baseline === 'bare')
  const express = rows.filter(row => row.baseline === 'express-bare')
  return `### Request overhead\n\n` +
    `autocannon (1 worker, ${plan.connections} connections, loopback) against a one-route server (\`GET /\` → \`{"hello":"world"}\`); ` +
    `${plan.warmupSeconds} s warm-up then ${plan.seconds} s, ${plan.rounds} interleaved round(s), each server in its own process; median (min–max). ` +
    '"× bare" and "over bare" compare with the bare server of the same framework in the same round; a bare server loads nothing but its framework. ' +
    'kinde-metering bills the customer named in the `x-customer` header; metered routes count `searches` +1, and with two meters also `egress_bytes` = `responseBytes`. ' +
    'Server µs/request is user + system CPU from `/proc/<pid>/stat` over the window, divided by responses.\n\n' +
    overheadTable(fastify) +
    (naive === undefined ? '' : `\n\nThe naive server, last round: ${num(naive.started)} POSTs started, ${num(naive.ok)} answered 2xx, ${num(naive.failed)} failed, ${num(naive.unanswered)} still unanswered at the end.`) +
    caution +
    (express.length === 0 ? '' : `\n\nExpress 5 (\`res.json\`), same load:\n\n${overheadTable(express)}`)
}

export function recordingBlock (rows: RecordingRow[]): string {
  return '### Recording\n\n`Metering.record()` against pending (customer, feature) pairs (half as many customers, 2 features each), pointed at the emulator but never flushing; ' +
    'heap is `process.memoryUsage().heapUsed` after `gc()` before and after the pairs were recorded, customer id strings included.\n\n' +
    table(['pending pairs', 'record() calls/s', 'heap bytes per pair'], rows.map(r => [num(r.pairs), range(r.opsPerSecond), range(r.heapBytesPerPair, 1)]))
}

export function deliveryBlock (row: DeliveryRow): string {
  return `### Delivery\n\nOne flush of ${num(row.pairs)} pending pairs to the emulator (its own process, on its own core), default concurrency ${row.concurrency}; ` +
    'CPU of each side over the flush.\n\n' +
    table(['records/s', 'client CPU µs/record', 'emulator CPU µs/record', 'client core busy', 'emulator core busy'],
      [[range(row.recordsPerSecond), range(row.clientMicrosPerRecord, 1), range(row.emulatorMicrosPerRecord, 1), percent(row.clientCpuShare), percent(row.emulatorCpuShare)]]) +
    `\n\nLimited by: ${limitedBy(row)}. Against Kinde itself, each send waits a network round trip: at concurrency ${row.concurrency} and 50 ms that is ` +
    `${num(row.concurrency / 0.05)} records/s, whatever either side's CPU.`
}

/** A metered overhead run, as a check of the model: pending pairs after `served` requests. */
export interface MeasuredCalls { label: string, customers: number, served: number, pendingPairs: number }

export function callsBlock (rows: CallsRow[], measured: MeasuredCalls[]): string {
  return '### Kinde calls per 1,000,000 requests\n\n' +
    'Computed from the aggregation model: kinde-metering sends one record per (customer, feature) pair with usage in a flush interval, however many requests are behind it; ' +
    'the naive approach sends one per request and meter. With R requests/s, a flush every T s (default 60) and C customers equally likely, an interval holds ' +
    'n = R·T requests from C·(1 − (1 − 1/C)^n) distinct customers on average; two meters per route.\n\n' +
    table(['req/s', 'customers', 'naive calls', 'kinde-metering calls', 'kinde-metering calls/s'],
      rows.map(row => [num(row.requestsPerSecond), num(row.customers), num(row.naive), num(row.aggregated), num(row.aggregatedPerSecond, 1)])) +
    (measured.length === 0
      ? ''
      : '\n\nChecked against the overhead runs, where requests name the customers in turn: ' + measured.map(m =>
        `${m.label}: ${num(m.served)} requests left ${num(m.pendingPairs)} pending pairs, i.e. ${num(m.pendingPairs)} calls at the next flush ` +
        `(model: 2 × min(n, C) = ${num(2 * Math.min(m.served, m.customers))})`).join('; ') + '.')
}

export function otherBlock (name: string, result: { rows?: Array<Record<string, unknown>>, missing?: true, error?: string }): string {
  if (result.missing === true) return `### ${name}\n\n(bench/${name}.ts not present: skipped)`
  if (result.error !== undefined) return `### ${name}\n\nfailed: ${result.error.split('\n')[0]}`
  return `### ${name}\n\n${genericTable(result.rows!)}`
}

export function targetsBlock (targets: Target[], overhead: OverheadRow[] | undefined): string {
  const basis = overhead === undefined ? undefined : basisOf(overhead)
  const judged = basis === undefined ? '' : basis.on === 'nothing' ? `Throughput targets not judged: ${basis.why}.\n\n` : `Throughput targets judged on ${basis.on}: ${basis.why}.\n\n`
  return `### Targets\n\n${judged}${table(['target', 'this run', 'met'], targets.map(t => [t.target, t.value, t.met]))}`
}
