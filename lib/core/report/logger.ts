// lib/core/report/: what the core tells the user: stats, drops, log output and errors.
/**
 * The logger used when the host gives none (the bare core, Express): warnings and errors on
 * stderr, nothing below. Fastify's plugin passes the app's own logger instead.
 */
import { inspect } from 'node:util'
import type { Logger } from '../usage/types.js'

const noop = (): void => {}

/** The whole entry, however deep: Kinde's error body sits below the depth console.* prints by default. */
const full = (obj: object): string => inspect(obj, { depth: null })

/** Writes warn and error entries to the console's error stream. */
export const consoleLogger: Logger = {
  debug: noop,
  info: noop,
  warn: (obj, msg) => { console.warn(msg, full(obj)) },
  error: (obj, msg) => { console.error(msg, full(obj)) }
}
