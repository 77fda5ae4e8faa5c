// Types of scripts/services.js, for the tests that import it.

/** What to install, or which variable to set, where Redis can be neither found nor installed. */
export declare const REMEDY: string

/** What this machine offers for Redis. */
export interface Facts {
  redisUrl?: string
  redisServer: boolean
  root: boolean
  aptGet: boolean
  debianLike: boolean
}

/** What to do about Redis. */
export type Decision = { use: 'url' | 'local' | 'install' } | { use: 'none', reason: string }

/** Whether `command` is an executable file in one of the directories of `path` (a PATH value). */
export declare function onPath (command: string, path?: string): boolean
/** Whether an os-release file's text names Debian or Ubuntu (or a distribution derived from one). */
export declare function debianLike (osRelease: string): boolean
/** What to do about Redis, from the facts of this machine. */
export declare function decide (facts: Facts): Decision
/** The facts `decide` needs, read from `env` and this machine. */
export declare function facts (env?: NodeJS.ProcessEnv, osReleaseFile?: string, root?: boolean): Facts
/** A URL fit to print: the password (and user) left out. */
export declare function printable (url: string): string
/** Finds or installs Redis; at most one line to `out`; why not, on one line, when not. */
export declare function provideRedis (options?: {
  env?: NodeJS.ProcessEnv
  osReleaseFile?: string
  root?: boolean
  out?: (line: string) => void
}): Promise<{ ok: true } | { ok: false, reason: string }>
