// lib/redis/: the shared Redis store: its scripts, key layout and the take/settle over them.
/**
 * The Lua scripts behind the Redis store, each one atomic in Redis, and how they are run.
 *
 * Layout under the prefix `P`:
 * - `P live`: a hash of the fleet's sums, merged into by every instance;
 * - `P snapshot:<n>`: a hash taken from `live` by a flush (renamed, so merges made during the
 *   flush land in the new `live`);
 * - `P inflight`: a hash from snapshot number to the take that owns it until it settles;
 * - `P lease`: the id of the instance that flushes for the fleet, with an expiry;
 * - `P seq`: the counter that numbers snapshots;
 * - `P seen:<instance>`: the last batch number an instance merged, so a batch sent twice (its
 *   answer lost, then retried) is merged once.
 *
 * A usage hash holds, per pair `[kind,"id","feature"]` (JSON): `l<pair>` the amount in micros
 * below 10^12 (HINCRBY, exact integers), `h<pair>` the amount above it in units of 10^12 micros,
 * as a decimal string added digit by digit (so no amount is too large), `t<pair>` the epoch ms of
 * its latest usage, and one field `o`: the epoch ms of the hash's earliest usage. An absolute value
 * (`set()`) of a pair is one field `a<pair>`: `<epoch ms> <origin instance> <micros>`, replaced
 * only by a later value: later by time; in one millisecond, by the greater origin id (so every
 * instance's merge agrees), and from one origin, by the value merged last, except that a value
 * put back after a failed send never replaces one of its origin's set since.
 *
 * Every key a script touches is declared in its `KEYS` (the store learns which snapshots are in
 * flight with {@link PREPARE} before {@link TAKE} claims them): a client `keyPrefix` applies to
 * all of them, and servers that enforce declared keys accept the scripts. A standalone Redis 7.0
 * does not check, even for a `#!lua` script, so test/redis/scripts.test.ts runs the scripts behind
 * a guard that does. The prefix's Redis Cluster hash tag keeps every key in one slot.
 */
import { createHash } from 'node:crypto'

/** Micros held in a low field: the rest is carried into the high field. */
export const LOW_BASE = 1_000_000_000_000

/** A script's source and SHA-1, for EVALSHA. */
export interface Script {
  readonly source: string
  readonly sha: string
}

function script (source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

/**
 * Lua helpers shared by the scripts that merge usage: `add` sums two decimal strings of any
 * length; `later` orders two absolute values; `mergeOne` adds the ARGV quadruple (pair, high,
 * low, at) at `i` into a usage hash; a quadruple whose high part is `a` is an absolute value
 * (pair, 'a', '<at> <origin> <micros>', at), held when later (`putBack`: it failed to send);
 * `merge` adds every quadruple from `from` on and keeps the hash's earliest time.
 */
const MERGE = `
local function add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local digit = carry
    if i > 0 then digit = digit + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then digit = digit + string.byte(b, j) - 48; j = j - 1 end
    out[#out + 1] = string.char(48 + digit % 10)
    carry = math.floor(digit / 10)
  end
  return string.reverse(table.concat(out))
end

local function later(value, held, putBack)
  local at, origin = string.match(value, '^(%d+) (%S+) ')
  local heldAt, heldOrigin = string.match(held, '^(%d+) (%S+) ')
  if at ~= heldAt then return tonumber(at) > tonumber(heldAt) end
  if origin ~= heldOrigin then return origin > heldOrigin end
  return not putBack
end

local function mergeOne(key, i, putBack)
  local pair, high, at = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  if high == 'a' then
    local held = redis.call('HGET', key, 'a' .. pair)
    if not held or later(ARGV[i + 2], held, putBack) then redis.call('HSET', key, 'a' .. pair, ARGV[i + 2]) end
    return
  end
  if redis.call('HINCRBY', key, 'l' .. pair, ARGV[i + 2]) >= ${LOW_BASE} then
    redis.call('HINCRBY', key, 'l' .. pair, '-${LOW_BASE}')
    high = add(high, '1')
  end
  if high ~= '0' then
    redis.call('HSET', key, 'h' .. pair, add(redis.call('HGET', key, 'h' .. pair) or '0', high))
  end
  local latest = redis.call('HGET', key, 't' .. pair)
  if not latest or tonumber(latest) < tonumber(at) then redis.call('HSET', key, 't' .. pair, at) end
end

local function keepEarliest(key, oldest)
  local earliest = redis.call('HGET', key, 'o')
  if not earliest or tonumber(earliest) > tonumber(oldest) then redis.call('HSET', key, 'o', oldest) end
end

local function merge(key, oldest, from, putBack)
  for i = from, #ARGV, 4 do mergeOne(key, i, putBack) end
  keepEarliest(key, oldest)
end
`

/**
 * Merges one batch of an instance into `live`, unless that batch was merged already.
 * KEYS: live, seen. ARGV: batch number, seen TTL (ms), oldest, then quadruples.
 * Returns 1 when merged, 0 when it had been.
 */
export const MERGE_BATCH = script(`${MERGE}
local seen = redis.call('GET', KEYS[2])
if seen and tonumber(seen) >= tonumber(ARGV[1]) then return 0 end
merge(KEYS[1], ARGV[3], 4, false)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

/**
 * The first step of a take: when the lease is free or ours, numbers the snapshot the take will
 * make and lists the snapshots in flight, so that {@link TAKE} can declare every key it touches.
 * KEYS: lease, inflight, seq. ARGV: instance id.
 * Returns nil when another instance holds the lease; else the new snapshot's number, then the
 * numbers of the snapshots in flight.
 */
export const PREPARE = script(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return nil end
local out = redis.call('HKEYS', KEYS[2])
table.insert(out, 1, tostring(redis.call('INCR', KEYS[3])))
return out
`)

/**
 * Takes the lease if free or ours, then snapshots `live` and claims every snapshot still in
 * flight (left by a take that never settled) among those {@link PREPARE} listed; one that became
 * in flight since is claimed by the next take.
 * KEYS: lease, live, inflight, then the snapshots: the new one first, then those in flight.
 * ARGV: instance id, take id, lease TTL (ms), adopt ('1': claim other instances' snapshots, '0':
 * delete them), then the snapshots' numbers, in the order of their keys.
 * Returns nil when another instance holds the lease; else a flat list of (snapshot number, 1 when
 * it certainly was not delivered (this instance's own) else 0, its fields).
 */
export const TAKE = script(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return nil end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
local mine = ARGV[1] .. ':'
local out = {}
for i = 5, #KEYS do
  local number = ARGV[i + 1]
  local owner = redis.call('HGET', KEYS[3], number)
  if owner then
    local certain = string.sub(owner, 1, #mine) == mine
    out[#out + 1] = number
    out[#out + 1] = certain and 1 or 0
    out[#out + 1] = redis.call('HGETALL', KEYS[i])
    if certain or ARGV[4] == '1' then
      redis.call('HSET', KEYS[3], number, ARGV[2])
    else
      redis.call('DEL', KEYS[i])
      redis.call('HDEL', KEYS[3], number)
    end
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[4])
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[2])
  out[#out + 1] = ARGV[5]
  out[#out + 1] = 1
  out[#out + 1] = redis.call('HGETALL', KEYS[4])
end
return out
`)

/**
 * Ends a take, in steps of at most `MERGE_CHUNK` pairs: each step moves the pairs it is given
 * that the take's snapshots still hold back into `live` (merged, and deleted from the
 * snapshots), so a step run twice, or a crash between steps, never counts a pair twice; the
 * last step (`final`) deletes the snapshots. When another instance claimed the snapshots (this
 * one lost the lease), it delivers them and nothing is moved.
 * KEYS: inflight, live, then the take's snapshots. ARGV: take id, oldest, final ('1' or '0'),
 * the snapshots' numbers in the order of their keys, then quadruples.
 * Returns 1 when the take still owned its snapshots, else 0.
 */
export const SETTLE = script(`${MERGE}
local owned = {}
for i = 3, #KEYS do
  if redis.call('HGET', KEYS[1], ARGV[i + 1]) == ARGV[1] then owned[#owned + 1] = i end
end
if #owned == 0 then return 0 end
local moved = false
for i = #KEYS + 2, #ARGV, 4 do
  local pair = ARGV[i]
  local held = 0
  for _, k in ipairs(owned) do
    if ARGV[i + 1] == 'a' then held = held + redis.call('HDEL', KEYS[k], 'a' .. pair)
    else held = held + redis.call('HDEL', KEYS[k], 'l' .. pair, 'h' .. pair, 't' .. pair) end
  end
  if held > 0 then
    mergeOne(KEYS[2], i, true)
    moved = true
  end
end
if moved then keepEarliest(KEYS[2], ARGV[2]) end
if ARGV[3] == '1' then
  for _, k in ipairs(owned) do
    redis.call('DEL', KEYS[k])
    redis.call('HDEL', KEYS[1], ARGV[k + 1])
  end
end
return 1
`)

/**
 * Renews the lease for ARGV[2] ms if instance ARGV[1] holds it, or releases it when ARGV[2] is
 * '0'. KEYS: lease. Returns 1 when the instance held it, else 0.
 */
export const LEASE = script(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`)

/** The part of an ioredis client (`Redis` or `Cluster`) the store uses. */
export interface ScriptClient {
  evalsha (sha: string, numKeys: number, args: Array<string | number>): Promise<unknown>
  eval (source: string, numKeys: number, args: Array<string | number>): Promise<unknown>
  hdel (key: string, fields: string[]): Promise<number>
}

/** Runs a script by SHA-1, loading it on first use (and again after Redis forgot its scripts). */
export async function runScript (client: ScriptClient, script: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
  const all = [...keys, ...args]
  try {
    return await client.evalsha(script.sha, keys.length, all)
  } catch (error) {
    if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error
    return await client.eval(script.source, keys.length, all)
  }
}
