/**
 * The Kinde emulator in a process of its own, so that what it spends answering is never charged
 * to the process being measured. Knows agreements `agr_0` … `agr_<n-1>`, each with `FEATURES` and `BYTES_FEATURE`.
 */
import { answer, childConfig, tell } from './proc.js'
import { loadTesting } from './package.js'
import { agreementId, BYTES_FEATURE, FEATURES } from './customers.js'

/** What the emulator process is asked for. */
export interface EmulatorConfig { agreements: number }

/** What `stats` answers. */
export interface EmulatorStats {
  /** Meter usage requests received since start. */
  meterUsageCalls: number
  /** Of the records received since the last reset, those applied. */
  applied: number
  /** CPU µs this process has used since start (user + system). */
  cpuMicros: number
}

async function main (): Promise<void> {
  const { agreements } = childConfig<EmulatorConfig>()
  const { startKindeEmulator } = await loadTesting()
  const kinde = await startKindeEmulator({
    agreements: Array.from({ length: agreements }, (_, i) => ({ id: agreementId(i), customerId: `cus_${i}`, features: [...FEATURES, BYTES_FEATURE] }))
  })
  answer('stats', () => {
    const cpu = process.cpuUsage()
    const stats: EmulatorStats = {
      meterUsageCalls: kinde.calls.meter_usage,
      applied: kinde.records.reduce((sum, record) => sum + (record.applied ? 1 : 0), 0),
      cpuMicros: cpu.user + cpu.system
    }
    return stats
  })
  // Records are kept for assertions; the benchmark only needs counts, so memory stays flat.
  answer('reset', () => {
    kinde.records.length = 0
    return {}
  })
  tell({ type: 'ready', url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret })
}

void main()
