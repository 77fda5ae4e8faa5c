/**
 * The recording and delivery sections, as the harness runs them: each round in fresh processes
 * (the Metering on core 0, the emulator on core 1), summarized as medians with ranges.
 */
import type { DeliveryConfig, DeliveryResult } from './delivery.js'
import type { EmulatorStats } from './emulator.js'
import { cpuMicros, startChild, type Child, type PackageSource } from './proc.js'
import type { RecordingConfig, RecordingResult } from './recording.js'
import { spread, type Spread } from './stats.js'

/** The emulator's address and M2M credentials. */
export interface Kinde { url: string, clientId: string, clientSecret: string }

/** `record()` throughput and memory at one number of pending pairs. */
export interface RecordingRow { pairs: number, opsPerSecond: Spread, heapBytesPerPair: Spread }

/** One flush of many pending pairs, and what each side spent on it. */
export interface DeliveryRow {
  pairs: number
  concurrency: number
  recordsPerSecond: Spread
  clientMicrosPerRecord: Spread
  emulatorMicrosPerRecord: Spread
  /** Shares of a core each side used during the flush. */
  clientCpuShare: Spread
  emulatorCpuShare: Spread
}

/** Measures `record()` at each number of pairs, `rounds` times, each in a fresh process. */
export async function benchRecording (kinde: Kinde, plan: { rounds: number, pairs: number[], seconds: number, from: PackageSource },
  progress: (line: string) => void): Promise<RecordingRow[]> {
  const results: RecordingResult[] = []
  for (let round = 0; round < plan.rounds; round++) {
    for (const pairs of plan.pairs) {
      const config: RecordingConfig = { pairs, seconds: plan.seconds, kinde }
      const child = startChild('recording.ts', config, { core: 0, from: plan.from, nodeArgs: ['--expose-gc', '--max-old-space-size=4096'] })
      try {
        const result = await child.next<RecordingResult>('result')
        if (result.pending !== pairs) throw new Error(`recording: ${result.pending} pairs pending, expected ${pairs}`)
        results.push(result)
        progress(`recording ${pairs} pairs: ${Math.round(result.opsPerSecond)} ops/s, ${result.heapBytesPerPair.toFixed(1)} B/pair`)
      } finally {
        await child.kill()
      }
    }
  }
  return plan.pairs.map(pairs => {
    const mine = results.filter(result => result.pairs === pairs)
    return { pairs, opsPerSecond: spread(mine.map(r => r.opsPerSecond)), heapBytesPerPair: spread(mine.map(r => r.heapBytesPerPair)) }
  })
}

/** Times one flush of `pairs` pending pairs to the emulator, `rounds` times, reading both sides' CPU. */
export async function benchDelivery (kinde: Kinde, emulator: Child, plan: { rounds: number, pairs: number, from: PackageSource },
  progress: (line: string) => void): Promise<DeliveryRow> {
  const samples: Array<DeliveryResult & { emulatorCpuMicros: number }> = []
  for (let round = 0; round < plan.rounds; round++) {
    await emulator.ask({ type: 'reset' })
    const config: DeliveryConfig = { pairs: plan.pairs, kinde }
    const child = startChild('delivery.ts', config, { core: 0, from: plan.from })
    try {
      await child.next('recorded')
      const before = cpuMicros(emulator.pid)
      child.send({ type: 'go' })
      const result = await child.next<DeliveryResult>('result')
      const emulatorCpuMicros = cpuMicros(emulator.pid) - before
      const { applied } = await emulator.ask<EmulatorStats>({ type: 'stats' })
      if (result.sent !== plan.pairs || applied < plan.pairs) {
        throw new Error(`delivery: sent ${result.sent}, emulator applied ${applied}, expected ${plan.pairs}`)
      }
      samples.push({ ...result, emulatorCpuMicros })
      progress(`delivery ${plan.pairs} pairs: ${Math.round(result.sent / result.seconds)} records/s`)
    } finally {
      await child.kill()
    }
  }
  return {
    pairs: plan.pairs,
    concurrency: samples[0].concurrency,
    recordsPerSecond: spread(samples.map(s => s.sent / s.seconds)),
    clientMicrosPerRecord: spread(samples.map(s => s.clientCpuMicros / s.sent)),
    emulatorMicrosPerRecord: spread(samples.map(s => s.emulatorCpuMicros / s.sent)),
    clientCpuShare: spread(samples.map(s => s.clientCpuMicros / (s.seconds * 1e6))),
    emulatorCpuShare: spread(samples.map(s => s.emulatorCpuMicros / (s.seconds * 1e6)))
  }
}
