// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * How the Redis store talks to Redis: each script bounded by a timeout, nothing new sent while a
 * timed-out command is still unanswered (it may yet run), and each outage logged once, when it
 * starts, and once more when Redis answers again.
 */
import { KindeMeteringError } from '../core/report/errors.js'
import type { Logger } from '../core/usage/types.js'
import { runScript, type Script, type ScriptClient } from './scripts.js'

/** Runs the store's scripts on the application's client. */
export class RedisChannel {
  /** Where outages are logged: the core's logger, once the store is attached. */
  logger: Logger | undefined
  readonly #client: ScriptClient
  readonly #timeout: number
  /** Commands that timed out and are still unanswered: while any is, Redis counts as unavailable. */
  #stalled = 0
  #down = false

  constructor (client: ScriptClient, timeout: number) {
    this.#client = client
    this.#timeout = timeout
  }

  /** False from a failed command until one succeeds again. */
  get available (): boolean { return !this.#down }

  /** Runs a script; rejects when Redis fails, does not answer within the timeout, or is stalled. */
  async run (script: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    let reply: unknown
    try {
      reply = await this.#bounded(script, keys, args)
    } catch (error) {
      if (!this.#down) {
        this.#down = true
        this.logger!.error({ err: error },
          'kinde-metering: Redis is unavailable; usage stays in this instance\'s memory (up to maxPendingPairs) and is merged when Redis answers again')
      }
      throw error
    }
    if (this.#down) {
      this.#down = false
      this.logger!.info({}, 'kinde-metering: Redis answers again; usage kept meanwhile is merged')
    }
    return reply
  }

  /**
   * Deletes hash fields without waiting or retrying: for work whose loss only costs a repeat
   * (see `RedisStore.delivered`).
   */
  forget (key: string, fields: string[]): void {
    this.#client.hdel(key, fields).catch(ignore)
  }

  #bounded (script: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    if (this.#stalled > 0) {
      return Promise.reject(new KindeMeteringError('KINDE_METERING_REDIS_UNAVAILABLE', 'kinde-metering: an earlier Redis command is still unanswered'))
    }
    const reply = runScript(this.#client, script, keys, args)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#stalled++
        const answered = (): void => { this.#stalled-- }
        reply.then(answered, answered)
        reject(new KindeMeteringError('KINDE_METERING_REDIS_UNAVAILABLE', `kinde-metering: Redis did not answer within ${this.#timeout} ms`))
      }, this.#timeout)
      reply.then(value => {
        clearTimeout(timer)
        resolve(value)
      }, error => {
        clearTimeout(timer)
        reject(error)
      })
    })
  }
}

/** Swallows a rejection that needs no handling. */
export function ignore (): void {}
