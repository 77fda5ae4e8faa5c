/**
 * How the examples run, kept out of them so each reads as the integration alone: which Kinde they
 * bill (yours, or the local emulator), and what they print when run as a program.
 *
 * Each example prints one JSON line when it listens, `{ "example", "listening", "try" }`, and,
 * when it stops (Ctrl-C or SIGTERM) after the plugin's final flush, one more with what the
 * emulator recorded: `{ "example", "kinde": { agreementId: { feature: "total" } } }`. Against
 * your Kinde there is no such line: Kinde keeps the usage (see your business's billing pages).
 */
import type { FastifyInstance } from 'fastify'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startKindeEmulator, type EmulatorOptions, type KindeEmulator } from 'kinde-metering/testing'

/** The Kinde an example bills. */
export interface ExampleKinde {
  /**
   * Connection options for the plugin. Empty for your Kinde: the plugin then reads
   * `KINDE_DOMAIN`, `KINDE_MANAGEMENT_CLIENT_ID` and `KINDE_MANAGEMENT_CLIENT_SECRET` itself.
   */
  connection: { domain?: string, clientId?: string, clientSecret?: string }
  /** Kinde's URL: token issuer, JWKS host and Management API. */
  url: string
  /** The emulator, when `KINDE_DOMAIN` is not set. */
  emulator: KindeEmulator | undefined
}

/** A started example. */
export interface RunningExample {
  app: FastifyInstance
  /** Where the app listens, e.g. `http://127.0.0.1:3000`. */
  url: string
  kinde: ExampleKinde
  /** Requests to try, for the first line printed. */
  try: Record<string, string>
}

/**
 * Your Kinde when `KINDE_DOMAIN` is set; otherwise a local emulator holding `seed` (the
 * organizations, users and agreements the example bills).
 */
export async function exampleKinde (seed: EmulatorOptions, env = process.env): Promise<ExampleKinde> {
  const domain = env.KINDE_DOMAIN
  if (domain !== undefined && domain !== '') {
    return { connection: {}, url: /^https?:\/\//.test(domain) ? domain.replace(/\/$/, '') : `https://${domain}`, emulator: undefined }
  }
  const emulator = await startKindeEmulator(seed)
  return {
    connection: { domain: emulator.url, clientId: emulator.clientId, clientSecret: emulator.clientSecret },
    url: emulator.url,
    emulator
  }
}

/** The port to listen on: `PORT`, default 3000 (0 picks a free one). */
export function examplePort (env = process.env): number {
  return Number(env.PORT ?? 3000)
}

/** Totals the emulator recorded, per agreement and feature. */
function recorded (emulator: KindeEmulator): Record<string, Record<string, string>> {
  const totals: Record<string, Record<string, string>> = {}
  for (const record of emulator.records) {
    if (!record.applied) continue
    const agreement = record.customer_agreement_id
    totals[agreement] ??= {}
    totals[agreement][record.billing_feature_code] = emulator.usage(agreement, record.billing_feature_code)
  }
  return totals
}

/**
 * When `moduleUrl` is the program being run (not imported), starts the example, prints where it
 * listens, and on SIGINT or SIGTERM closes the app (the plugin delivers what is pending to Kinde)
 * and prints what the emulator recorded.
 */
export function runWhenExecuted (moduleUrl: string, start: () => Promise<RunningExample>): void {
  if (process.argv[1] === undefined || resolve(process.argv[1]) !== fileURLToPath(moduleUrl)) return
  const example = fileURLToPath(moduleUrl).replace(/^.*[\\/]/, '').replace(/\.ts$/, '')
  const print = (line: object): void => { process.stdout.write(JSON.stringify({ example, ...line }) + '\n') }
  start().then(running => {
    const stop = async (): Promise<void> => {
      await running.app.close()
      const emulator = running.kinde.emulator
      if (emulator !== undefined) {
        print({ kinde: recorded(emulator) })
        await emulator.close()
      }
    }
    // Ready to stop before saying it listens: whoever reads the line may stop it at once.
    process.once('SIGINT', stop).once('SIGTERM', stop)
    print({ listening: running.url, kinde: running.kinde.url, try: running.try })
  }, (error: unknown) => {
    process.stderr.write(`${example}: ${(error as Error).stack ?? String(error)}\n`)
    process.exitCode = 1
  })
}
