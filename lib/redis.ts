// lib/: the entry points: the Fastify plugin, the Express middleware, the Redis store, the emulator.
/**
 * Fleet mode: `kinde-metering/redis`. Many instances of one API share their usage through Redis,
 * and one instance at a time delivers it, so Kinde receives one record per (customer, feature)
 * per flush interval for the whole fleet.
 *
 * ```ts
 * import fastifyRedis from '@fastify/redis'
 * import kindeMetering from 'kinde-metering'
 * import { redisStore } from 'kinde-metering/redis'
 *
 * await app.register(fastifyRedis, { url: process.env.REDIS_URL })
 * await app.register(kindeMetering, { store: redisStore({ client: app.redis }) })
 * ```
 * @module
 */
import type { Cluster, Redis } from 'ioredis'
import { InvalidOptionError } from './core/report/errors.js'
import { milliseconds, positiveInteger } from './core/config/checks.js'
import { rejectUnknownKeys } from './core/config/option-keys.js'
import type { ScriptClient } from './redis/scripts.js'
import { RedisStore } from './redis/store.js'

export { RedisStore }

/** Options of {@link redisStore}. */
export interface RedisStoreOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`) the application owns, such as `app.redis` from
   * `@fastify/redis`. The store sends its commands through it and never closes it.
   */
  client: Redis | Cluster
  /**
   * Prefix of every key the store writes. Default `'{kinde-metering}:'`: the braces are a Redis
   * Cluster hash tag that keeps all the keys in one slot, as the store's scripts need (keep one in
   * a prefix of your own). Applications that bill different Kinde businesses need different
   * prefixes.
   */
  prefix?: string
  /** Milliseconds between merges of each instance's sums into Redis. Default 1,000 (one second). */
  syncInterval?: number
  /**
   * Milliseconds the flushing instance's lease lasts unless renewed (it is renewed every third of
   * that): how long the fleet waits before another instance takes over from one that died.
   * A whole number. Default 10,000 (ten seconds).
   */
  leaseTtl?: number
  /**
   * Milliseconds the store waits for Redis to answer before it counts Redis as unavailable and
   * keeps usage in memory. Default 2,000 (two seconds).
   */
  timeout?: number
}

/**
 * A store that shares pending usage between the instances of a fleet through Redis. Pass it as
 * the `store` option of the plugin or of `Metering`; one store per metering instance.
 * @throws InvalidOptionError naming the option at fault, or an option key it does not know.
 */
export function redisStore (options: RedisStoreOptions): RedisStore {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'must be an object')
  rejectUnknownKeys(options, ['client', 'prefix', 'syncInterval', 'leaseTtl', 'timeout'] satisfies Array<keyof RedisStoreOptions>)
  const client = options.client as unknown as Partial<ScriptClient> | undefined
  if (client === null || typeof client !== 'object' || typeof client.evalsha !== 'function' ||
    typeof client.eval !== 'function' || typeof client.hdel !== 'function') {
    throw new InvalidOptionError('client', 'must be an ioredis client (Redis or Cluster), such as app.redis from @fastify/redis')
  }
  const prefix = options.prefix ?? '{kinde-metering}:'
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new InvalidOptionError('prefix', `must be a non-empty string, got ${JSON.stringify(prefix)}`)
  }
  const leaseTtl = positiveInteger('leaseTtl', options.leaseTtl, 10_000, 'milliseconds') // 10 s
  return new RedisStore({
    client: client as ScriptClient,
    prefix,
    syncInterval: milliseconds('syncInterval', options.syncInterval, 1_000), // 1 s
    leaseTtl,
    timeout: milliseconds('timeout', options.timeout, 2_000) // 2 s
  })
}
