// lib/adapters/: per-request rules both adapters share: which responses count, built-in meters, who pays.
/**
 * Compiles what a route meters (`config.meter`, or the Express `meter()` middleware's argument)
 * once, when the route is added, into features and value readers the request only calls.
 */
import { InvalidOptionError } from '../core/report/errors.js'
import { MAX_REFERENCE_LENGTH } from '../core/metering.js'

/** Built-in values: body sizes in bytes (headers excluded), and the time to respond in ms. */
export type BuiltInValue = 'requestBytes' | 'responseBytes' | 'durationMs'

/**
 * One meter of a route: a feature code (+1 per counted request), or a feature with a value: a
 * fixed number, a built-in, or a function of the request and response returning a number.
 */
export type MeterSpec<Req, Res> =
  | string
  | { feature: string, value?: number | BuiltInValue | ((request: Req, reply: Res) => number) }

/** What a route meters: one meter or several. */
export type RouteMeterSpec<Req, Res> = MeterSpec<Req, Res> | Array<MeterSpec<Req, Res>>

/** A meter ready for the request path. */
export interface CompiledMeter<Req, Res> {
  feature: string
  /** A fixed amount, a built-in, or a function. */
  value: number | BuiltInValue | ((request: Req, reply: Res) => number)
}

const BUILT_INS: ReadonlySet<string> = new Set(['requestBytes', 'responseBytes', 'durationMs'])

/**
 * Validates and normalizes a route's meter declaration.
 * @param where the route, for the error message (e.g. `GET /search`).
 * @throws InvalidOptionError naming `config.meter` and the route.
 */
export function compileRouteMeter<Req, Res> (spec: unknown, where: string, option = 'config.meter'): Array<CompiledMeter<Req, Res>> {
  if (spec === undefined || spec === null) return []
  const specs = Array.isArray(spec) ? spec : [spec]
  return specs.map((one: unknown) => {
    const meter = typeof one === 'string' ? { feature: one, value: 1 } : one as { feature?: unknown, value?: unknown }
    if (meter === null || typeof meter !== 'object') {
      throw new InvalidOptionError(option, `of ${where} must be a feature code or { feature, value }, got ${JSON.stringify(one)}`)
    }
    const { feature, value = 1 } = meter
    if (typeof feature !== 'string' || feature.length === 0 || feature.length > MAX_REFERENCE_LENGTH) {
      throw new InvalidOptionError(option, `of ${where} must name a feature (a non-empty Kinde billing feature code), got ${JSON.stringify(feature)}`)
    }
    const valid = typeof value === 'function' ||
      (typeof value === 'number' && Number.isFinite(value) && value >= 0) ||
      (typeof value === 'string' && BUILT_INS.has(value))
    if (!valid) {
      throw new InvalidOptionError(option, `of ${where}: value of "${feature}" must be a number >= 0, a function, or one of ${[...BUILT_INS].join(', ')}; got ${JSON.stringify(value)}`)
    }
    return { feature, value: value as CompiledMeter<Req, Res>['value'] }
  })
}
