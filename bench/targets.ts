/**
 * The targets, judged from one run. Throughput ratios are judged on what set the pace:
 * measured req/s when the server was the bottleneck; the ratio of server CPU per request (what
 * req/s would be, were the server the bottleneck) when autocannon's own core was as busy as the
 * server's; not at all when the bare server did not keep its core busy (other processes ran).
 */
import { num } from './table.js'
import type { OverheadRow, OverheadSample } from './overhead.js'
import type { DeliveryRow, RecordingRow } from './sections.js'

/** A process below this share of its core was not the bottleneck of its run. */
export const SATURATED = 0.9

/** One target and how this run fared. */
export interface Target {
  target: string
  value: string
  met: 'yes' | 'no' | 'unclear'
}

/** What the throughput targets of a run are judged on, and why. */
export interface Basis {
  on: 'req/s' | 'CPU µs/request' | 'nothing'
  why: string
}

const signed = (value: number): string => `${value >= 0 ? '+' : '−'}${num(Math.abs(value), 1)}`

const verdict = (ok: boolean, reliable = true): Target['met'] => (!reliable ? 'unclear' : ok ? 'yes' : 'no')

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** Whether the runs of a bare server (`bare`, or `express-bare`) measured the server (see the module comment). */
export function basisOf (rows: OverheadRow[], baseline = 'bare'): Basis {
  const bare = rows.find(r => r.case === baseline)
  if (bare === undefined) return { on: 'nothing', why: `no ${baseline} server was measured` }
  const server = bare.serverCpuShare.median
  const load = bare.loadCpuShare.median
  if (server < SATURATED) return { on: 'nothing', why: `the ${baseline} server used only ${num(server * 100)}% of its core: other processes were running` }
  if (load >= SATURATED) return { on: 'CPU µs/request', why: `autocannon used ${num(load * 100)}% of its core against the ${baseline} server: near its speed it, not the server, set req/s` }
  return { on: 'req/s', why: `the ${baseline} server used ${num(server * 100)}% of its core, autocannon ${num(load * 100)}% of its own` }
}

/** The figures one framework's targets are judged on: ratios to its bare server, round by round. */
function judge (overhead: { rows: OverheadRow[], samples: OverheadSample[] }, baseline: string): {
  has: (name: string) => boolean
  basis: Basis
  /** A figure per round, as measured (req/s) and as predicted from CPU per request, medians over rounds. */
  figure: (f: (ratio: (name: string) => number) => number) => { rps: number, cpu: number, judged: number }
  /** Median over rounds of `name`'s server CPU µs/request minus `than`'s. */
  extraMicros: (name: string, than: string) => number
} {
  const basis = basisOf(overhead.rows, baseline)
  const rounds = [...new Set(overhead.samples.map(s => s.round))]
  const of = (round: number, name: string): OverheadSample => overhead.samples.find(s => s.round === round && s.case === name)!
  return {
    has: name => overhead.rows.some(r => r.case === name),
    basis,
    figure: f => {
      const rps = median(rounds.map(round => f(name => of(round, name).requestsPerSecond / of(round, baseline).requestsPerSecond)))
      const cpu = median(rounds.map(round => f(name => of(round, baseline).serverCpuMicros / of(round, name).serverCpuMicros)))
      return { rps, cpu, judged: basis.on === 'CPU µs/request' ? cpu : rps }
    },
    extraMicros: (name, than) => median(rounds.map(round => of(round, name).serverCpuMicros - of(round, than).serverCpuMicros))
  }
}

const both = (x: { rps: number, cpu: number }, format: (value: number) => string): string =>
  `req/s ${format(x.rps)}; CPU µs/request ${format(x.cpu)}`
const ratio = (value: number): string => num(value, 2)

function fastifyTargets (overhead: { rows: OverheadRow[], samples: OverheadSample[] }): Target[] {
  const out: Target[] = []
  const { has, basis, figure, extraMicros } = judge(overhead, 'bare')
  const judged = basis.on !== 'nothing'
  if (!has('bare')) return out
  const floors = [
    ['unmetered', 'kinde-metering registered, route unmetered: ≥ 0.97 of bare throughput', 0.97],
    ['metering-1k', 'kinde-metering (count + responseBytes) ≥ 0.88 of bare throughput, 1,000 customers', 0.88],
    ['metering-100k', 'kinde-metering (count + responseBytes) ≥ 0.85 of bare throughput, 100,000 customers', 0.85]
  ] as const
  for (const [name, target, floor] of floors) {
    if (!has(name)) continue
    const x = figure(r => r(name))
    out.push({ target, value: `${both(x, ratio)} (${signed(extraMicros(name, 'bare'))} µs/request)`, met: verdict(x.judged >= floor, judged) })
  }
  if (has('metering-1k') && has('hook')) {
    const micros = extraMicros('metering-1k', 'hook')
    out.push({
      target: 'the metering work (count + responseBytes, 1,000 customers) at most +1.5 µs/request over an empty hook',
      value: `${signed(micros)} µs/request`,
      met: verdict(micros <= 1.5, judged)
    })
  }
  if (has('metering-1k') && has('rate-limit')) {
    const x = figure(r => r('metering-1k') - r('rate-limit'))
    out.push({
      target: 'ahead of @fastify/rate-limit in the same run',
      value: both(x, lead => `${lead >= 0 ? 'ahead by' : 'behind by'} ${num(Math.abs(lead) * 100, 1)} points`),
      met: verdict(x.judged > 0, judged)
    })
  }
  return out
}

function expressTargets (overhead: { rows: OverheadRow[], samples: OverheadSample[] }): Target[] {
  const { has, basis, extraMicros } = judge(overhead, 'express-bare')
  const judged = basis.on !== 'nothing'
  const out: Target[] = []
  // Within noise: rounds of one Express server differ by about 2% in CPU µs/request.
  const noise = 0.02 * (overhead.rows.find(r => r.case === 'express-bare')?.serverCpuMicros.median ?? 0)
  const pairs = [
    ['express-unmetered', 'express-trivial', 'Express: `app.use(kindeMetering(...))` costs no more than one trivial middleware'],
    ['express-metered', 'express-finish', 'Express: a metered route costs no more than a middleware adding one `finish` listener']
  ] as const
  for (const [name, than, target] of pairs) {
    if (!has(name) || !has(than)) continue
    const micros = extraMicros(name, than)
    out.push({ target, value: `${signed(micros)} µs/request (noise: ±${num(noise, 1)})`, met: verdict(micros <= noise, judged) })
  }
  return out
}

/** Every target this run has figures for. */
export function judgeTargets (overhead: { rows: OverheadRow[], samples: OverheadSample[] } | undefined,
  recording: RecordingRow[] | undefined, delivery: DeliveryRow | undefined): Target[] {
  const out = overhead === undefined ? [] : [...fastifyTargets(overhead), ...expressTargets(overhead)]
  if (recording !== undefined) {
    const small = recording[0]
    const large = recording[recording.length - 1]
    out.push({ target: `record() ≥ 5,000,000 calls/s at ${num(small.pairs)} pairs`, value: num(small.opsPerSecond.median), met: verdict(small.opsPerSecond.median >= 5e6) })
    out.push({ target: `≤ 200 heap bytes per pending pair at ${num(large.pairs)} pairs`, value: num(large.heapBytesPerPair.median, 1), met: verdict(large.heapBytesPerPair.median <= 200) })
  }
  if (delivery !== undefined) {
    out.push({
      target: 'delivery limited by the emulator, not by the client',
      value: `${limitedBy(delivery)}; emulator ${num(delivery.emulatorMicrosPerRecord.median, 1)} µs/record, client ${num(delivery.clientMicrosPerRecord.median, 1)} µs/record`,
      // Clearly: a tie means the client would cap delivery as soon as the server got faster.
      met: verdict(delivery.emulatorMicrosPerRecord.median > 1.1 * delivery.clientMicrosPerRecord.median)
    })
  }
  return out
}

/** Which side set the delivery rate: the one that kept its core busy, if either did. */
export function limitedBy (delivery: DeliveryRow): string {
  const client = delivery.clientCpuShare.median
  const emulator = delivery.emulatorCpuShare.median
  const shares = `client ${num(client * 100)}% busy, emulator ${num(emulator * 100)}%`
  const busy = SATURATED - 0.1
  if (client >= busy && emulator >= busy && Math.abs(client - emulator) < 0.05) return `both sides alike (${shares}): a send costs each end about the same CPU`
  if (emulator >= busy && emulator > client) return `the emulator (${shares})`
  if (client >= busy) return `the client (${shares})`
  return `neither side (${shares}): round trips at concurrency ${delivery.concurrency}, or a busy machine`
}
