/**
 * Loads kinde-metering the way the harness was told to: from the build in `dist/esm` (what users
 * run; `npm run bench` builds it first) or from the TypeScript sources (the smoke run, which needs
 * no build).
 */
import { ROOT } from './proc.js'

type Source = 'dist' | 'lib'

function source (): Source {
  return process.env.KINDE_METERING_BENCH_FROM === 'lib' ? 'lib' : 'dist'
}

function modulePath (name: 'index' | 'express' | 'testing'): string {
  return source() === 'lib' ? `${ROOT}lib/${name}.ts` : `${ROOT}dist/esm/${name}.js`
}

/** The package's main entry. */
export async function loadPackage (): Promise<typeof import('../lib/index.js')> {
  return await import(modulePath('index')) as typeof import('../lib/index.js')
}

/** `kinde-metering/express`: the Express middleware. */
export async function loadExpress (): Promise<typeof import('../lib/express.js')> {
  return await import(modulePath('express')) as typeof import('../lib/express.js')
}

/** `kinde-metering/testing`: the emulator. */
export async function loadTesting (): Promise<typeof import('../lib/testing.js')> {
  return await import(modulePath('testing')) as typeof import('../lib/testing.js')
}
