/**
 * Shared set-up for tests: an emulator with a few customers, and a metered Fastify app on it.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { kindeMetering, Metering, type KindeMeteringOptions, type MeteringOptions } from '../lib/index.js'
import { startKindeEmulator, type EmulatorOptions, type KindeEmulator } from '../lib/testing.js'

/** Features every emulated agreement includes. */
export const FEATURES = ['searches', 'egress_bytes', 'renders', 'cpu_ms', 'llm_tokens', 'request_bytes', 'seats', 'storage_gb']

/** An emulator with agreements `agr_1` … `agr_n` (customers `cus_1` …), closed at teardown. */
export async function emulator (t: Test, options: EmulatorOptions & { customers?: number } = {}): Promise<KindeEmulator> {
  const count = options.customers ?? 3
  const agreements = Array.from({ length: count }, (_, i) => ({ id: `agr_${i + 1}`, customerId: `cus_${i + 1}`, features: FEATURES }))
  const kinde = await startKindeEmulator({ agreements, ...options })
  t.teardown(() => kinde.close())
  return kinde
}

/** Options that point the plugin at the emulator, bill the agreement in header `x-agreement`, and never flush on their own. */
export function pluginOptions (kinde: KindeEmulator, extra: KindeMeteringOptions = {}): KindeMeteringOptions {
  return {
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    customer: request => {
      const id = request.headers['x-agreement']
      return typeof id === 'string' ? { agreementId: id } : undefined
    },
    flushInterval: 3_600_000,
    retry: { baseDelay: 1, maxDelay: 5 },
    ...extra
  }
}

/** A Fastify app with the plugin registered (closed at teardown) and no logger output. */
export async function meteredApp (t: Test, kinde: KindeEmulator, extra: KindeMeteringOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde, extra))
  return app
}

/** A logger that keeps what it is given, for assertions. */
export function memoryLogger (): { entries: Array<{ level: string, obj: any, msg?: string }>, logger: any } {
  const entries: Array<{ level: string, obj: any, msg?: string }> = []
  const at = (level: string) => (obj: any, msg?: string) => { entries.push({ level, obj, msg }) }
  const logger: any = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), trace: at('trace') }
  logger.child = () => logger
  logger.level = 'trace'
  return { entries, logger }
}

/** A bare core pointed at the emulator, never flushing on its own, quiet; closed at teardown. */
export function coreOn (t: Test, kinde: KindeEmulator, extra: Partial<MeteringOptions> = {}): Metering {
  const core = new Metering({
    domain: kinde.url,
    clientId: kinde.clientId,
    clientSecret: kinde.clientSecret,
    flushInterval: 3_600_000,
    retry: { baseDelay: 1, maxDelay: 5 },
    logger: memoryLogger().logger,
    ...extra
  })
  t.teardown(() => core.close())
  return core
}

/** A logger that keeps every entry and whose `flushed` resolves with the next flush's outcome, or rejects after `ms`. */
export function flushWatch (ms = 5_000): { entries: ReturnType<typeof memoryLogger>['entries'], logger: any, flushed: () => Promise<any> } {
  const { entries, logger } = memoryLogger()
  let waiting: ((outcome: any) => void) | undefined
  const debug = logger.debug
  logger.debug = (obj: any, msg?: string) => {
    debug(obj, msg)
    if (msg === 'kinde-metering: flush') waiting?.(obj)
  }
  return {
    entries,
    logger,
    flushed: async () => await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no flush within ${ms} ms`)), ms)
      waiting = outcome => { clearTimeout(timer); waiting = undefined; resolve(outcome) }
    })
  }
}

/** Runs `set` with the clock read as `at`: a value set at a chosen time. */
export function setAt (at: number, set: () => void): void {
  const now = Date.now
  Date.now = () => at
  try {
    set()
  } finally {
    Date.now = now
  }
}
