// lib/core/report/: what the core tells the user: stats, drops, log output and errors.
/**
 * Errors with stable codes, so users can branch on `error.code` rather than on messages.
 * Messages never carry secrets: tokens and the client secret are never interpolated.
 */

/**
 * The brand every error of this package carries: the names of its classes. `Symbol.for` gives
 * every copy of the package (its CommonJS and ES module builds, two versions in one app) the same
 * symbol, so `instanceof` holds across copies, where the prototype chain differs (undici brands
 * its errors the same way).
 */
// Stryker disable next-line StringLiteral: any key every copy shares brands alike; the name only keeps other libraries' symbols apart
const kBrand = Symbol.for('kinde-metering.error')

/** Base class of every error this package throws or reports. */
export class KindeMeteringError extends Error {
  /** Stable machine-readable code, `KINDE_METERING_…`. */
  readonly code: string

  /** True for an error of this class made by any copy of the package. */
  static override [Symbol.hasInstance] (value: unknown): boolean {
    // Stryker disable next-line ConditionalExpression: every instance made by a constructor carries the brand, so the prototype check is only the fast path
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true
    const brand = typeof value === 'object' && value !== null ? (value as { [kBrand]?: unknown })[kBrand] : undefined
    return Array.isArray(brand) && brand.includes(this.name)
  }

  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    // Stryker disable next-line ArrayDeclaration: an extra name in the brand matters only to a class of that name
    const classes: string[] = []
    for (let of: Function = new.target; of !== Error; of = Object.getPrototypeOf(of)) classes.push(of.name)
    Object.defineProperty(this, kBrand, { value: classes })
  }
}

/** An option passed at registration is missing or invalid; `option` names it. */
export class InvalidOptionError extends KindeMeteringError {
  declare readonly code: 'KINDE_METERING_INVALID_OPTION'
  /** The option at fault, as the user wrote it (e.g. `flushInterval`, `config.meter`). */
  readonly option: string

  constructor (option: string, message: string) {
    super('KINDE_METERING_INVALID_OPTION', `kinde-metering: option "${option}" ${message}`)
    this.option = option
  }
}

/** Kinde answered a request with an error status; `status` and Kinde's error `body` are kept. */
export class KindeApiError extends KindeMeteringError {
  declare readonly code: 'KINDE_METERING_API_ERROR'
  /** HTTP status Kinde answered with. */
  readonly status: number
  /** Kinde's error body, parsed when it was JSON. */
  readonly body: unknown

  constructor (what: string, status: number, body: unknown) {
    super('KINDE_METERING_API_ERROR', `kinde-metering: ${what} failed with HTTP ${status}: ${describeBody(body)}`)
    this.status = status
    this.body = body
  }
}

/** The M2M token could not be obtained (bad credentials, wrong audience, Kinde unreachable). */
export class TokenError extends KindeMeteringError {
  declare readonly code: 'KINDE_METERING_TOKEN_ERROR'
  /** HTTP status of the token endpoint's answer, when there was one. */
  readonly status: number | undefined
  /** The option that failed to give a token (`accessToken`), when the token was the user's to supply. */
  readonly option: string | undefined
  /**
   * The OAuth2 `error` code the token endpoint answered (`invalid_client`, …); `undefined` when
   * its answer carried none (an HTML page: not a Kinde domain) or there was no answer.
   */
  readonly oauthError: string | undefined

  constructor (message: string, status?: number, options?: { cause?: unknown, option?: string, oauthError?: string }) {
    super('KINDE_METERING_TOKEN_ERROR', `kinde-metering: ${message}`, options)
    this.status = status
    this.option = options?.option
    this.oauthError = options?.oauthError
  }
}

/** A request to Kinde failed without an HTTP answer (refused, reset, timed out). */
export class KindeNetworkError extends KindeMeteringError {
  declare readonly code: 'KINDE_METERING_NETWORK_ERROR'

  constructor (what: string, cause: Error) {
    super('KINDE_METERING_NETWORK_ERROR', `kinde-metering: ${what} failed: ${cause.message}`, { cause })
  }
}

/** Shortens an error body for a message. */
function describeBody (body: unknown): string {
  return (typeof body === 'string' ? body : JSON.stringify(body)).slice(0, 500)
}
