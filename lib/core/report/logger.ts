// lib/core/report/: what the core tells the user: stats, drops, log output and errors.
/**
 * The logger used when the host gives none (the bare core, Express): warnings and errors on
 * stderr, nothing below. Fastify's plugin passes the app's own logger instead.
 */
import type { Logger } from '../usage/types.js'

const noop = (): void => {}

/** Writes warn and error entries to the console's error stream. */
export const consoleLogger: Logger = {
  debug: noop,
  info: noop,
  warn: (obj, msg) => { console.warn(msg, obj) },
  error: (obj, msg) => { console.error(msg, obj) }
}
