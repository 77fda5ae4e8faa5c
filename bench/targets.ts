/**
 * The targets, judged from one run. A throughput ratio is only judged when the bare
 * server kept its core busy: otherwise other processes set the pace, not the server.
 */
import { num } from './table.js'
import type { OverheadRow, OverheadSample } from './overhead.js'
import type { DeliveryRow, RecordingRow } from './sections.js'

/** A server below this share of its core was not the bottleneck of its own run. */
export const SATURATED = 0.9

/** One target and how this run fared. */
export interface Target {
  target: string
  value: string
  met: 'yes' | 'no' | 'unclear'
}

const signed = (value: number): string => `${value >= 0 ? '+' : '−'}${num(Math.abs(value), 1)}`

const verdict = (ok: boolean, reliable = true): Target['met'] => (!reliable ? 'unclear' : ok ? 'yes' : 'no')

function overheadTargets (overhead: { rows: OverheadRow[], samples: OverheadSample[] }): Target[] {
  const out: Target[] = []
  const row = (name: string): OverheadRow | undefined => overhead.rows.find(r => r.case === name)
  const bare = row('bare')
  const saturated = bare !== undefined && bare.serverCpuShare.median >= SATURATED
  /** The measured ratio, and the one CPU per request predicts for a saturated server. */
  const ratios = (r: OverheadRow): string => `${num(r.throughputRatio.median, 2)} (from CPU µs/request: ${num(1 / r.cpuRatio.median, 2)})`
  const m1 = row('metering-1k')
  const m100 = row('metering-100k')
  const hook = row('hook')
  const peer = row('rate-limit')
  if (m1 !== undefined) out.push({ target: 'kinde-metering ≥ 0.88 of bare throughput, 1,000 customers', value: ratios(m1), met: verdict(m1.throughputRatio.median >= 0.88, saturated) })
  if (m100 !== undefined) out.push({ target: 'kinde-metering ≥ 0.85 of bare throughput, 100,000 customers', value: ratios(m100), met: verdict(m100.throughputRatio.median >= 0.85, saturated) })
  if (m1 !== undefined && hook !== undefined) {
    // Per round, so that both sides of the difference share their bare server.
    const gaps = [...new Set(overhead.samples.map(s => s.round))].map(round => {
      const of = (name: string): OverheadSample => overhead.samples.find(s => s.round === round && s.case === name)!
      return (of('hook').requestsPerSecond - of('metering-1k').requestsPerSecond) / of('bare').requestsPerSecond
    }).sort((a, b) => a - b)
    const gap = gaps[gaps.length >> 1]
    out.push({
      target: 'the metering work within 2 points of an empty hook (1,000 customers)',
      value: `${num(gap * 100, 1)} points (${signed(m1.serverCpuMicros.median - hook.serverCpuMicros.median)} µs/request)`,
      met: verdict(gap <= 0.02, saturated)
    })
  }
  if (m1 !== undefined && peer !== undefined) {
    out.push({
      target: 'ahead of @fastify/rate-limit in the same run',
      value: `${num(m1.throughputRatio.median, 2)} vs ${num(peer.throughputRatio.median, 2)}`,
      met: verdict(m1.throughputRatio.median > peer.throughputRatio.median, saturated)
    })
  }
  return out
}

/** Every target this run has figures for. */
export function judgeTargets (overhead: { rows: OverheadRow[], samples: OverheadSample[] } | undefined,
  recording: RecordingRow[] | undefined, delivery: DeliveryRow | undefined): Target[] {
  const out = overhead === undefined ? [] : overheadTargets(overhead)
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
      met: verdict(delivery.emulatorMicrosPerRecord.median > delivery.clientMicrosPerRecord.median)
    })
  }
  return out
}

/** Which side set the delivery rate: the one that kept its core busy, if either did. */
export function limitedBy (delivery: DeliveryRow): string {
  const client = delivery.clientCpuShare.median
  const emulator = delivery.emulatorCpuShare.median
  const busy = (share: number): string => `${num(share * 100)}% busy`
  if (emulator >= SATURATED * 0.95 && emulator >= client) return `the emulator (${busy(emulator)}; client ${busy(client)})`
  if (client >= SATURATED * 0.95) return `the client (${busy(client)}; emulator ${busy(emulator)})`
  return `neither side (client ${busy(client)}, emulator ${busy(emulator)}): round trips at concurrency ${delivery.concurrency}, or a busy machine`
}
