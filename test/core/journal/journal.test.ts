import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmod, copyFile, mkdir, open, readdir, readFile, readlink, rm, stat, symlink, unlink, utimes, watch, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { crc32 } from 'node:zlib'
import { join } from 'node:path'
import { Aggregator } from '../../../lib/core/usage/aggregator.js'
import { formatMicros } from '../../../lib/core/usage/decimal.js'
import { Journal, type JournalTiming } from '../../../lib/core/journal/journal.js'
import { resolveJournalConfig } from '../../../lib/core/config/journal-options.js'
import { decodeJournal, JournalState } from '../../../lib/core/journal/format.js'
import type { UsageEntry } from '../../../lib/core/usage/types.js'
import { keyed, keysOf, type Take } from '../../../lib/core/store/take.js'
import { deadJournal, startChild } from './children.js'
import { memoryLogger } from '../../fixtures.js'

/** A journal in `dir`, closed at teardown. */
function journal (t: Test, dir: string, options: { drop?: boolean, fsync?: boolean, timing?: JournalTiming, logger?: any } = {}): Journal {
  const opened = new Journal(resolveJournalConfig({ dir, fsync: options.fsync }, false)!, options.drop ?? false, options.logger ?? memoryLogger().logger, options.timing)
  t.teardown(() => opened.close())
  return opened
}

const entry = (id: string, units: number, at: number, feature = 'searches'): UsageEntry => ({ kind: 0, id, feature, micros: units * 1_000_000, at })

let takes = 0
/** Opens a take of `entries` and has `journal` follow it, as a flush does. */
function taking (journal: Journal, entries: UsageEntry[]): Take {
  const take = { id: String(++takes), entries: keyed(entries), oldest: Math.min(...entries.map(entry => entry.at)) }
  journal.taken(take)
  return take
}
/** The keys of a take's entries at `indexes`, all of them without. */
const keysAt = (take: Take, ...indexes: number[]): string[] => indexes.length === 0 ? keysOf(take.entries) : indexes.map(i => take.entries[i].key)

/** Entries summed per `kind/id/feature` → [units, latest at], for comparison. */
function byPair (entries: UsageEntry[]): Record<string, [string, number]> {
  const sums = new Aggregator()
  for (const { kind, id, feature, micros, at } of entries) sums.add(kind, id, feature, micros, at)
  return Object.fromEntries(sums.drain().entries.map(({ kind, id, feature, micros, at }) => [`${kind}/${id}/${feature}`, [formatMicros(micros), at]]))
}

/** The journal files in `dir`. */
async function journalFiles (dir: string): Promise<string[]> {
  return (await readdir(dir)).filter(name => name.endsWith('.journal'))
}

/** What a journal file says is pending, replayed. */
async function replay (path: string): Promise<UsageEntry[]> {
  const state = new JournalState()
  for (const line of decodeJournal(await readFile(path, 'utf8')).lines) state.apply(line)
  return state.split(false).pending
}

/** A logger that keeps its entries, and `logged(pattern)` resolving once a message matches (holding the process open meanwhile). */
function watchedLogger (): ReturnType<typeof memoryLogger> & { logged: (pattern: RegExp) => Promise<void> } {
  const { logger, entries } = memoryLogger()
  const waiting: Array<{ pattern: RegExp, resolve: () => void }> = []
  for (const level of ['debug', 'info', 'warn', 'error']) {
    logger[level] = (obj: any, msg: string) => {
      entries.push({ level, obj, msg })
      for (const waiter of waiting.filter(waiter => waiter.pattern.test(msg))) waiter.resolve()
    }
  }
  const logged = async (pattern: RegExp): Promise<void> => {
    if (entries.some(entry => pattern.test(entry.msg!))) return
    // Journal timers do not hold the process open; this one does, until the message came.
    const keepAlive = setTimeout(() => {}, 10_000)
    await new Promise<void>(resolve => waiting.push({ pattern, resolve }))
    clearTimeout(keepAlive)
  }
  return { logger, entries, logged }
}

/** The pid of a process that has ended. */
const deadPid = spawnSync(process.execPath, ['-e', '']).pid!

/**
 * Copies the journal `from` wrote into `to`, as a process that died would have left it: under
 * an owner id of its own, beside a lock naming a pid that is gone.
 */
async function leaveAsDead (from: Journal, fromDir: string, to: string, owner = `${deadPid}-0000dead`): Promise<void> {
  await from.written()
  const [name] = await journalFiles(fromDir)
  await copyFile(join(fromDir, name), join(to, `${owner}.journal`))
  await writeFile(join(to, `${owner}.lock`), JSON.stringify({ pid: deadPid, host: hostname(), id: owner }))
}

const BIG = '9007199254740993000001' // micros beyond 2^53: 9,007,199,254,740,993.000001 units

t.test('the journal a killed process left is taken over: pending usage comes back with its timestamps, delivered usage does not', async t => {
  const dir = t.testdir()
  await deadJournal(t, dir, [
    { append: [[0, 'agr_1', 'searches', 1_000_000, 1000], [1, 'cus_1', 'cpu_ms', 2_500_000, 2000]] },
    { append: [[0, 'agr_1', 'searches', 500_000, 3000], [0, 'agr_2', 'searches', BIG, 4000], [0, 'agr_3', 'searches', 7_000_000, 4000]] },
    // A flush takes three pairs and sends them: Kinde accepts agr_1, rejects agr_3 (dropped), and
    // fails cus_1 without applying it (left over).
    { take: [[0, 'agr_1', 'searches', 1_500_000, 3000], [1, 'cus_1', 'cpu_ms', 2_500_000, 2000], [0, 'agr_3', 'searches', 7_000_000, 4000]] },
    { send: [0, 1, 2] },
    { deliver: [0] },
    { settle: [1] },
    { append: [[0, 'agr_1', 'searches', 3_000_000, 5000]] }
  ])
  const deadFiles = await readdir(dir)
  t.equal(deadFiles.length, 2, 'the dead process left its lock and its journal')

  const survivor = journal(t, dir)
  const recovery = await survivor.recover()
  t.same(byPair(recovery.pending.entries), {
    '0/agr_1/searches': ['3', 5000],
    '1/cus_1/cpu_ms': ['2.5', 2000],
    '0/agr_2/searches': ['9007199254740993.000001', 4000]
  })
  t.equal(recovery.pending.oldest, 2000)
  t.same(recovery.ambiguous, [])
  t.match(survivor.stats(), { state: 'open', recovered: { journals: 1, pending: { records: 3, units: '9007199254740998.500001' }, ambiguous: { records: 0, units: '0' }, skippedLines: 0 } })

  const files = await readdir(dir)
  t.equal(files.filter(name => deadFiles.includes(name)).length, 0, 'the dead process\'s files are gone')
  const [own] = await journalFiles(dir)
  t.same(byPair(await replay(join(dir, own))), byPair(recovery.pending.entries), 'what was taken over is in the survivor\'s own journal')

  t.same((await survivor.recover()).pending.entries, [], 'a second scan finds nothing more')
})

t.test('usage a flush had in flight when its process died is sent again under retry, reported under drop', async t => {
  const dir = t.testdir({ source: {}, retry: {}, drop: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_1', 9, 500)])
  const delivered = taking(source, [entry('agr_1', 9, 500)])
  await source.sending(delivered.id, keysAt(delivered))
  source.delivered(delivered.id, keysAt(delivered))
  await source.settle(delivered.id)
  // The next flush takes three pairs; two are being sent when the process dies, agr_4 waits its turn.
  const taken = [entry('agr_1', 4, 1000), entry('agr_3', 3, 1000), entry('agr_4', 5, 1000)]
  source.append(taken)
  const flush = taking(source, taken)
  await source.sending(flush.id, keysAt(flush, 0, 1))
  // Recorded while the flush was sending, in the same pair and another.
  source.append([entry('agr_1', 1, 2000), entry('agr_2', 7, 2000)])
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'retry'))
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'drop'))

  const retrying = journal(t, join(dir, 'retry'))
  const retried = await retrying.recover()
  t.same(byPair(retried.pending.entries), { '0/agr_1/searches': ['5', 2000], '0/agr_2/searches': ['7', 2000], '0/agr_3/searches': ['3', 1000], '0/agr_4/searches': ['5', 1000] })
  t.same(retried.ambiguous, [])
  t.same(retrying.stats().recovered.ambiguous, { records: 2, units: '7' }, 'counted as ambiguous')

  const dropping = journal(t, join(dir, 'drop'), { drop: true })
  const dropped = await dropping.recover()
  t.same(byPair(dropped.pending.entries), { '0/agr_1/searches': ['1', 2000], '0/agr_2/searches': ['7', 2000], '0/agr_4/searches': ['5', 1000] }, 'what was not being sent is not ambiguous')
  t.same(byPair(dropped.ambiguous.map(item => item.entry)), { '0/agr_1/searches': ['4', 2000], '0/agr_3/searches': ['3', 1000] })
  t.match(dropped.ambiguous[0].error, { message: /in flight when the process that recorded it died/ })
  t.same(dropping.stats().recovered.ambiguous, { records: 2, units: '7' })
})

t.test('lines cut short by the crash or damaged on disk are skipped with a warning; the rest is recovered', async t => {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  for (const [id, units] of [['agr_1', 1], ['agr_2', 2], ['agr_3', 3], ['agr_3', 1]] as const) {
    source.append([entry(id, units, 1000)])
    await source.written()
  }
  const taken = taking(source, [entry('agr_2', 2, 1000), entry('agr_3', 4, 1000)])
  await source.sending(taken.id, keysAt(taken))
  source.dropped(taken.id, keysAt(taken, 0))
  source.putBack(taken.id, keysAt(taken, 1))
  await source.settle(taken.id)
  source.append([entry('agr_4', 4, 4000)])
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'work'), '1-0000dead')
  const path = join(dir, 'work', '1-0000dead.journal')
  const lines = (await readFile(path, 'utf8')).split('\n')
  t.equal(lines.length, 9, 'a header, four batches, a send, a settle, a batch, and the final newline')
  lines[0] = lines[0].replace('"H"', '"X"') // the header: its checksum no longer matches
  lines[2] = lines[2].replace('agr_2', 'agr_9') // agr_2's batch, damaged on disk; the flush took and delivered it
  lines[4] = lines[4].replace('agr_3', 'agr_8') // agr_3's second batch: the flush took and left over more than is left
  lines[7] = lines[7].slice(0, 30) // the last batch, cut short by the crash
  const foreign = (json: string): string => `${crc32(json).toString(16).padStart(8, '0')} ${json}`
  // Lines a later version might write, or garbage whose checksum happens to match.
  lines.splice(7, 0, foreign('{"t":"Z","e":[]}'), foreign('{'), foreign('null'))
  await writeFile(path, lines.slice(0, 11).join('\n'))

  const { logger, entries } = memoryLogger()
  const survivor = journal(t, join(dir, 'work'), { logger })
  const recovery = await survivor.recover()
  t.same(byPair(recovery.pending.entries), { '0/agr_1/searches': ['1', 1000], '0/agr_3/searches': ['3', 1000] })
  t.equal(recovery.ambiguous.length, 0, 'nothing was in flight: the flush had settled')
  t.equal(survivor.stats().recovered.skippedLines, 7)
  t.match(entries.find(entry => entry.level === 'warn' && /skipped/.test(entry.msg!)), { obj: { file: '1-0000dead.journal', skipped: 7 } })
})

t.test('where damaged lines left less than a later line takes or delivers, a take-over finds what is left, never a negative or larger amount', async t => {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  for (const [id, units] of [['agr_5', 2], ['agr_5', 3], ['agr_6', 1], ['agr_6', 3]] as const) {
    source.append([entry(id, units, 1000)])
    await source.written()
  }
  // A flush sends both pairs whole; Kinde accepts agr_5; the process dies while agr_6 is in flight.
  const taken = taking(source, [entry('agr_5', 5, 1000), entry('agr_6', 4, 1000)])
  await source.sending(taken.id, keysAt(taken))
  source.delivered(taken.id, keysAt(taken, 0))
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'work'), '1-0000dead')
  const path = join(dir, 'work', '1-0000dead.journal')
  const lines = (await readFile(path, 'utf8')).split('\n')
  t.equal(lines.length, 8, 'a header, four batches, a send, a delivery, and the final newline')
  // The second batch of each pair, damaged on disk: 2 of agr_5's 5 and 1 of agr_6's 4 are left.
  lines[2] = lines[2].replace('agr_5', 'agr_9')
  lines[4] = lines[4].replace('agr_6', 'agr_9')
  await writeFile(path, lines.join('\n'))

  const survivor = journal(t, join(dir, 'work'), { drop: true })
  const recovery = await survivor.recover()
  t.same(recovery.pending.entries, [], 'agr_5 delivered whole, agr_6 in flight whole: nothing left to send')
  t.same(byPair(recovery.ambiguous.map(item => item.entry)), { '0/agr_6/searches': ['1', 1000] }, 'in flight: what was left of agr_6, not the 4 sent')
  t.match(survivor.stats().recovered, { ambiguous: { records: 1, units: '1' }, skippedLines: 2 })
})

t.test('a level set in the millisecond of the one being sent stays pending once that one is delivered', async t => {
  const dir = t.testdir()
  const levels = journal(t, dir)
  await levels.recover()
  const seats = (units: number): UsageEntry => ({ ...entry('agr_1', units, 1000, 'seats'), absolute: true })
  levels.append([seats(4)])
  const take = taking(levels, [seats(4)])
  await levels.sending(take.id, keysAt(take))
  levels.append([seats(7)])
  levels.delivered(take.id, keysAt(take))
  await levels.settle(take.id)
  const [own] = await journalFiles(dir)
  t.same(await replay(join(dir, own)), [seats(7)], 'the later level, still to send')
})

t.test('usage taken over into a journal keeps the pair\'s latest time when it is older than what the journal holds', async t => {
  const dir = t.testdir({ source: {}, live: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_1', 2, 1000)])
  const live = journal(t, join(dir, 'live'))
  await live.recover()
  live.append([entry('agr_1', 3, 5000)])
  await live.written()
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'live'))
  await live.recover()
  const [own] = await journalFiles(join(dir, 'live'))
  t.same(byPair(await replay(join(dir, 'live', own))), { '0/agr_1/searches': ['5', 5000] }, 'summed, at the later time')
})

t.test('a level set again to the same value while the first is being sent stays pending once that one is delivered (the next period needs it)', async t => {
  const dir = t.testdir()
  const levels = journal(t, dir)
  await levels.recover()
  const seats = (at: number): UsageEntry => ({ ...entry('agr_1', 4, at, 'seats'), absolute: true })
  levels.append([seats(1000)])
  const take = taking(levels, [seats(1000)])
  await levels.sending(take.id, keysAt(take))
  levels.append([seats(2000)])
  levels.delivered(take.id, keysAt(take))
  await levels.settle(take.id)
  const [own] = await journalFiles(dir)
  t.same(await replay(join(dir, own)), [seats(2000)], 'the later one, still to send')
})

t.test('usage delivered or dropped stays so when the journal rewrites itself (here, to take over a dead process\'s journal)', async t => {
  const dir = t.testdir({ source: {}, live: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_9', 9, 900)])
  const live = journal(t, join(dir, 'live'))
  await live.recover()
  const seats: UsageEntry = { ...entry('agr_1', 4, 1000, 'seats'), absolute: true }
  const sent = [entry('agr_1', 3, 1000), seats, entry('agr_2', 2, 1000), { ...seats, id: 'agr_2' }]
  live.append(sent)
  const take = taking(live, sent)
  await live.sending(take.id, keysAt(take))
  live.append([entry('agr_1', 2, 2000)]) // recorded during the send
  // Kinde accepts agr_1's usage and level; agr_2's are rejected and dead-lettered.
  live.delivered(take.id, keysAt(take, 0, 1))
  live.dropped(take.id, keysAt(take, 2, 3))
  await live.settle(take.id)
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'live'))
  await live.recover()
  const [own] = await journalFiles(join(dir, 'live'))
  const rewritten = await readFile(join(dir, 'live', own), 'utf8')
  t.same(byPair(await replay(join(dir, 'live', own))), { '0/agr_1/searches': ['2', 2000], '0/agr_9/searches': ['9', 900] }, 'what was recorded during the send, and what was taken over')
  t.same(decodeJournal(rewritten).lines, [{ t: 'A', e: [[0, 'agr_1', 'searches', 2_000_000, 2000], [0, 'agr_9', 'searches', 9_000_000, 900]] }],
    'one line of what is pending: nothing of the pairs that left')
})

t.test('a take-over is logged once, with what it found; an intact journal warns of no skipped lines, and a scan that finds nothing logs nothing', async t => {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_1', 2, 1000), entry('agr_2', 0.5, 1000)])
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'work'))
  const { logger, entries } = memoryLogger()
  const survivor = journal(t, join(dir, 'work'), { logger })
  await survivor.recover()
  await survivor.recover()
  t.match(entries, [{ level: 'warn', msg: /took over the journals of processes that died/, obj: { journals: 1, records: 2, units: '2.5', ambiguous: 0, dropped: 0 } }])
  t.equal(entries.length, 1)
})

t.test('a journal taken over whose new owner died before deleting it is not replayed twice', async t => {
  const dir = t.testdir({ first: {}, kept: {}, second: {}, last: {} })
  const first = journal(t, join(dir, 'first'))
  await first.recover()
  first.append([entry('agr_1', 5, 1000)])
  await leaveAsDead(first, join(dir, 'first'), join(dir, 'kept'), '1-0000dead')
  await leaveAsDead(first, join(dir, 'first'), join(dir, 'second'), '1-0000dead')
  const second = journal(t, join(dir, 'second'))
  await second.recover()
  // The second died after writing what it took over into its journal, before deleting the original.
  await leaveAsDead(second, join(dir, 'second'), join(dir, 'last'), '2-0000dead')
  await copyFile(join(dir, 'kept', '1-0000dead.journal'), join(dir, 'last', '2-0000dead~1.journal'))
  const recovery = await journal(t, join(dir, 'last')).recover()
  t.same(byPair(recovery.pending.entries), { '0/agr_1/searches': ['5', 1000] }, 'once')
})

t.test('two live processes never take over each other\'s journal; once one dies, its journal is taken over exactly once', async t => {
  const dir = t.testdir()
  const live = startChild(t, 'hold.ts', [dir, JSON.stringify([{ append: [[0, 'agr_1', 'searches', 6_000_000, 1000]] }])])
  await live.next('ready')
  const filesOfLive = (await readdir(dir)).sort()

  const first = journal(t, dir)
  const second = journal(t, dir)
  t.same((await first.recover()).pending.entries, [], 'the live process keeps its journal')
  t.same((await second.recover()).pending.entries, [], 'neither journal of this process takes the other\'s')
  t.same((await readdir(dir)).filter(name => filesOfLive.includes(name)).sort(), filesOfLive, 'the live process\'s files are untouched')

  await live.kill()
  const [a, b] = await Promise.all([first.recover(), second.recover()])
  t.same(byPair([...a.pending.entries, ...b.pending.entries]), { '0/agr_1/searches': ['6', 1000] }, 'recovered by one of them, once')
  t.same((await first.recover()).pending.entries, [])
  t.same((await second.recover()).pending.entries, [])
})

t.test('locks: a heartbeat from another host, or a lock this version cannot read, is respected until it is stale; no lock, or this pid under another id, is a dead owner', async t => {
  const dir = t.testdir({ source: {}, work: { 'notes.txt': 'not a journal: left alone' } })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_1', 1, 1000)])
  const work = join(dir, 'work')
  /** A copy of the journal under `owner`, with `lock` as its lock file's content (none when undefined). */
  const leave = async (owner: string, lock: string | object | undefined): Promise<void> => {
    await leaveAsDead(source, join(dir, 'source'), work, owner)
    if (lock === undefined) await unlink(join(work, `${owner}.lock`))
    else await writeFile(join(work, `${owner}.lock`), typeof lock === 'string' ? lock : JSON.stringify(lock))
  }
  const elsewhere = '1-0000000a'
  const unreadable = '2-0000000b'
  const previousLife = '3-0000000c'
  const lockless = '4-0000000d'
  const pidNotANumber = '5-0000000e'
  // No process here has that pid: it says nothing of a process on another host.
  await leave(elsewhere, { pid: deadPid, host: 'another-host', id: elsewhere })
  await leave(unreadable, 'not json')
  await leave(pidNotANumber, { pid: String(deadPid), host: hostname(), id: pidNotANumber })
  await leave(previousLife, { pid: process.pid, host: hostname(), id: previousLife })
  await leave(lockless, undefined)

  const survivor = journal(t, work)
  const first = await survivor.recover()
  t.same(byPair(first.pending.entries), { '0/agr_1/searches': ['2', 1000] }, 'the previous life of this process, and the journal without a lock')
  t.same((await readdir(work)).filter(name => name.startsWith(previousLife) || name.startsWith(lockless)), [])

  const longAgo = new Date(Date.now() - 120_000)
  await utimes(join(work, `${elsewhere}.lock`), longAgo, longAgo)
  await utimes(join(work, `${unreadable}.lock`), longAgo, longAgo)
  await utimes(join(work, `${pidNotANumber}.lock`), longAgo, longAgo)
  const second = await survivor.recover()
  t.same(byPair(second.pending.entries), { '0/agr_1/searches': ['3', 1000] }, 'the three stale locks are taken over')
  t.same((await readdir(work)).filter(name => !name.startsWith(String(process.pid))), ['notes.txt'], 'only the survivor\'s files, and the stranger')
})

t.test('files that only resemble a journal\'s name (a copy kept by hand, a backup) are left alone, never replayed', async t => {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_1', 1, 1000)])
  const work = join(dir, 'work')
  // A journal its dead owner left, and two copies of it under names no journal is given.
  await leaveAsDead(source, join(dir, 'source'), work)
  const [left] = await journalFiles(work)
  const strangers = [`saved-${left}`, `${left}.bak`]
  for (const name of strangers) await copyFile(join(work, left), join(work, name))

  const recovery = await journal(t, work).recover()
  t.same(byPair(recovery.pending.entries), { '0/agr_1/searches': ['1', 1000] }, 'the dead owner\'s journal, once')
  t.same((await readdir(work)).filter(name => !name.startsWith(`${process.pid}-`)).sort(), strangers.sort(), 'the copies untouched')
})

t.test('a lock whose process belongs to another user is respected: that process is alive, though it may not be signalled', async t => {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_1', 1, 1000)])
  const work = join(dir, 'work')
  // pid 1 is root's: signalling it from another user fails with EPERM. Run as root, the journal runs as nobody.
  const owner = '1-0000000f'
  await leaveAsDead(source, join(dir, 'source'), work, owner)
  await writeFile(join(work, `${owner}.lock`), JSON.stringify({ pid: 1, host: hostname(), id: owner }))
  for (const path of [work, ...(await readdir(work)).map(name => join(work, name))]) await chmod(path, 0o777)
  const other = startChild(t, 'recover.ts', [work], {}, process.getuid?.() === 0 ? 65534 : undefined)
  t.same((await other.next('recovered')).recovered, [], 'nothing taken over')
  t.same((await readdir(work)).sort(), [`${owner}.journal`, `${owner}.lock`], 'its files untouched')
})

t.test('a journal left open does not keep its process alive: the heartbeat timer is unref\'d', async t => {
  const child = startChild(t, 'recover.ts', [t.testdir(), 'open'])
  t.same((await child.next('recovered')).recovered, [])
  // A deadline for the exit: a process held open by its heartbeat fails here instead of hanging.
  const deadline = new Promise<string>(resolve => { setTimeout(() => resolve('still running after 10 s'), 10_000).unref() })
  t.equal(await Promise.race([child.exited, deadline]), 0, 'it exited on its own')
})

t.test('a live process whose heartbeat stopped is taken over, and stops journaling when its next heartbeat finds out', async t => {
  const dir = t.testdir()
  const { logger, entries, logged } = watchedLogger()
  const stuck = journal(t, dir, { logger, timing: { heartbeatMs: 30, staleMs: 60_000, retryMs: 1000 } })
  await stuck.recover()
  stuck.append([entry('agr_1', 2, 1000)])
  await stuck.written()
  const lock = join(dir, (await readdir(dir)).find(name => name.endsWith('.lock'))!)
  const refreshed = (await stat(lock)).mtimeMs
  for await (const _ of watch(lock)) break
  t.ok((await stat(lock)).mtimeMs > refreshed, 'the heartbeat refreshes the lock')
  // A process that judges every lock not refreshed within the last millisecond abandoned.
  const impatient = journal(t, dir, { timing: { heartbeatMs: 60_000, staleMs: -1, retryMs: 1000 } })
  const recovery = await impatient.recover()
  t.same(byPair(recovery.pending.entries), { '0/agr_1/searches': ['2', 1000] })
  await logged(/lost its journal lock/)
  t.match(entries.find(entry => /lost its journal lock/.test(entry.msg!)), {
    level: 'error',
    msg: /journaling stops, usage is still delivered, and what both hold may be delivered twice/,
    obj: { err: { code: 'ENOENT' }, dir }
  }, 'logged with what it means, the error and the directory')
  t.match(stuck.stats(), { state: 'off', lastError: /^ENOENT/ })
  stuck.append([entry('agr_1', 1, 2000)])
  await stuck.settle(taking(stuck, []).id)
  t.equal((await journalFiles(dir)).length, 1, 'only the impatient process journals')
})

/** Counts the intervals started and not yet cleared from now to teardown; the timers themselves are real. */
function watchIntervals (t: Test): { started: number, running: Set<unknown> } {
  const seen = { started: 0, running: new Set<unknown>() }
  const { setInterval: realSet, clearInterval: realClear } = globalThis
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    const timer = realSet(...args)
    seen.started++
    seen.running.add(timer)
    return timer
  }) as typeof setInterval
  globalThis.clearInterval = ((timer: Parameters<typeof clearInterval>[0]) => {
    seen.running.delete(timer)
    realClear(timer)
  }) as typeof clearInterval
  t.teardown(() => { globalThis.setInterval = realSet; globalThis.clearInterval = realClear })
  return seen
}

/** Counts the real file system's data syncs (file handles) and full syncs (the directory's handle) from now to teardown. */
async function watchSyncs (t: Test): Promise<{ datasync: number, sync: number }> {
  const probe = await open(import.meta.filename, 'r')
  const fileHandle = Object.getPrototypeOf(probe) as { datasync: () => Promise<void>, sync: () => Promise<void> }
  await probe.close()
  const counts = { datasync: 0, sync: 0 }
  const { datasync, sync } = fileHandle
  fileHandle.datasync = function (this: unknown) { counts.datasync++; return datasync.call(this) }
  fileHandle.sync = function (this: unknown) { counts.sync++; return sync.call(this) }
  t.teardown(() => { fileHandle.datasync = datasync; fileHandle.sync = sync })
  return counts
}

/** The paths in or of `dir` this process holds a descriptor open on (Linux: /proc/self/fd). */
async function openIn (dir: string): Promise<string[]> {
  const targets = await Promise.all((await readdir('/proc/self/fd')).map(fd => readlink(join('/proc/self/fd', fd)).catch(() => '')))
  return targets.filter(target => target === dir || target.startsWith(`${dir}/`))
}

for (const fsync of [true, false]) {
  t.test(`fsync: ${fsync}: ${fsync ? 'each write, each rewrite and its rename are synced before written() resolves' : 'nothing is synced'}`, async t => {
    const dir = t.testdir()
    const syncs = await watchSyncs(t)
    const durable = journal(t, dir, { fsync })
    await durable.recover()
    // Opening writes the journal whole: its file is synced, then the directory holding the rename.
    t.same(syncs, fsync ? { datasync: 1, sync: 1 } : { datasync: 0, sync: 0 }, 'the first rewrite')
    durable.append([entry('agr_1', 1, 1000)])
    await durable.written()
    t.same(syncs, fsync ? { datasync: 2, sync: 1 } : { datasync: 0, sync: 0 }, 'an append')
    durable.append([entry('agr_1', 2, 2000)])
    await durable.written()
    t.same(syncs, fsync ? { datasync: 3, sync: 1 } : { datasync: 0, sync: 0 }, 'another append')
    await durable.recover()
    t.same(syncs, fsync ? { datasync: 3, sync: 1 } : { datasync: 0, sync: 0 }, 'a scan for dead journals that finds none writes nothing')
    const [own] = await journalFiles(dir)
    t.same(byPair(await replay(join(dir, own))), { '0/agr_1/searches': ['3', 2000] }, 'both on disk')
    t.same(await openIn(dir), [join(dir, own)], 'the journal alone is open: what a rewrite synced or wrote aside is closed')
    t.equal(durable.stats().bytes, (await stat(join(dir, own))).size, 'stats() says the size of the journal on disk')
  })
}

t.test('a journal rewrites itself once it outgrows 1 MiB, and says the same (with fsync)', async t => {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'), { fsync: true })
  await source.recover()
  // 40 batches of the same 1,000 pairs: about 1.3 MB of lines, about 33 kB once summed. From
  // the 10th on, a flush has ten pairs in flight: the rewrite keeps them in flight.
  const taken = Array.from({ length: 10 }, (_, i) => entry(`agr_${i}`, 10, 9))
  for (let batch = 0; batch < 40; batch++) {
    if (batch === 10) {
      const take = taking(source, taken)
      await source.sending(take.id, keysAt(take))
    }
    // Two appends before a write: written together.
    source.append(Array.from({ length: 500 }, (_, i) => entry(`agr_${i}`, 1, batch)))
    source.append(Array.from({ length: 500 }, (_, i) => entry(`agr_${500 + i}`, 1, batch)))
    await source.written()
  }
  const { bytes } = source.stats()
  t.ok(bytes < 500_000, `rewritten: ${bytes} bytes`)
  await leaveAsDead(source, join(dir, 'source'), join(dir, 'work'))
  const survivor = journal(t, join(dir, 'work'))
  const recovery = await survivor.recover()
  t.equal(recovery.pending.entries.length, 1000)
  t.ok(recovery.pending.entries.every(entry => entry.micros === 40_000_000 && entry.at === 39))
  t.same(survivor.stats().recovered.ambiguous, { records: 10, units: '100' })
})

/** A journal in a fresh `work` directory whose next rewrite fails with ENOSPC (it goes through a link to /dev/full). */
async function onFullDisk (t: Test, timing: JournalTiming) {
  const dir = t.testdir({ source: {}, work: {} })
  const source = journal(t, join(dir, 'source'))
  await source.recover()
  source.append([entry('agr_9', 9, 900)])
  const { logger, entries, logged } = watchedLogger()
  const work = join(dir, 'work')
  const full = journal(t, work, { logger, timing })
  await full.recover()
  full.append([entry('agr_1', 1, 1000)])
  await full.written()
  const [own] = await journalFiles(work)
  const tmp = join(work, own.replace('.journal', '.tmp'))
  await symlink('/dev/full', tmp)
  // A journal left by a dead process: taking it over needs a rewrite.
  await leaveAsDead(source, join(dir, 'source'), work)
  const recovery = await full.recover()
  return { full, work, own, tmp, entries, logged, recovery }
}

t.test('a full disk: writes fail and are counted, usage stays in memory, and the journal is rewritten once there is room', async t => {
  const { full, work, own, tmp, entries, logged, recovery } = await onFullDisk(t, { heartbeatMs: 20, staleMs: 60_000, retryMs: 0 })
  t.same(byPair(recovery.pending.entries), { '0/agr_9/searches': ['9', 900] }, 'taken over, in memory')
  t.match(full.stats(), { state: 'failing', lastError: /^ENOSPC/ })
  t.equal((await journalFiles(work)).length, 2, 'the journal taken over stays on disk while it is not in this one')
  const failures = full.stats().writeErrors
  full.append([entry('agr_1', 2, 2000)])
  await full.written()
  t.ok(full.stats().writeErrors > failures, 'new usage retries the rewrite')
  t.match(entries.filter(entry => entry.level === 'error'), [{ msg: /journal write failed; usage is still metered and delivered/, obj: { dir: work } }],
    'logged once while it lasts')

  // Room again; no new usage: the heartbeat retries.
  await unlink(tmp)
  await logged(/journal writes succeed again/)
  t.match(entries.find(entry => /journal writes succeed again/.test(entry.msg!)), { level: 'warn', obj: { dir: work } }, 'logged with the directory')
  t.match(full.stats(), { state: 'open' })
  t.same(await journalFiles(work), [own], 'the journal taken over is deleted once this one holds it')
  t.same(byPair(await replay(join(work, own))), { '0/agr_1/searches': ['3', 2000], '0/agr_9/searches': ['9', 900] })
})

t.test('while writes fail, new usage retries at most every retryMs', async t => {
  const { full } = await onFullDisk(t, { heartbeatMs: 60_000, staleMs: 60_000, retryMs: 60_000 })
  t.match(full.stats(), { state: 'failing', writeErrors: 1 })
  for (let i = 0; i < 10; i++) {
    full.append([entry('agr_1', 1, 2000 + i)])
    await full.written()
  }
  t.match(full.stats(), { state: 'failing', writeErrors: 1 })
})

t.test('a journal claimed but not yet absorbed (the disk was full) is found by the next process if the claimer dies', async t => {
  const { work } = await onFullDisk(t, { heartbeatMs: 60_000, staleMs: 60_000, retryMs: 60_000 })
  // What the failing process leaves if it is killed now: its journals, without its lock.
  const next = join(work, '..', 'next')
  await mkdir(next)
  for (const name of await journalFiles(work)) await copyFile(join(work, name), join(next, name))
  const recovery = await journal(t, next).recover()
  t.same(byPair(recovery.pending.entries), { '0/agr_1/searches': ['1', 1000], '0/agr_9/searches': ['9', 900] }, 'its own usage, and what it had claimed')
})

t.test('while writes fail, new usage retries them once retryMs has passed since the last failure, one rewrite for the batches waiting', async t => {
  const { full, entries } = await onFullDisk(t, { heartbeatMs: 60_000, staleMs: 60_000, retryMs: 0 })
  t.match(full.stats(), { state: 'failing', writeErrors: 1 })
  for (let i = 1; i <= 3; i++) {
    full.append([entry('agr_1', 1, 2000 + i)])
    full.append([entry('agr_2', 1, 2000 + i)])
    await full.written()
    t.equal(full.stats().writeErrors, 1 + i, `appends ${i} retried the rewrite, once`)
  }
  t.equal(entries.filter(entry => entry.level === 'error').length, 1, 'four failures, logged once while they last')
})

t.test('once writes succeed again, new usage is written at once, whatever retryMs', async t => {
  const { full, work, own, tmp, logged } = await onFullDisk(t, { heartbeatMs: 20, staleMs: 60_000, retryMs: 60_000 })
  await unlink(tmp)
  await logged(/journal writes succeed again/)
  full.append([entry('agr_1', 5, 3000)])
  await full.written()
  t.same(byPair(await replay(join(work, own))), { '0/agr_1/searches': ['6', 3000], '0/agr_9/searches': ['9', 900] })
})

t.test('a directory that cannot be used turns the journal off; one removed later makes it fail: logged, counted, never thrown', async t => {
  const dir = t.testdir({ 'a-file': 'not a directory', removed: {} })
  const { logger, entries } = memoryLogger()
  const off = journal(t, join(dir, 'a-file', 'journal'), { logger })
  t.same(await off.recover(), { pending: { entries: [], oldest: Infinity }, ambiguous: [] })
  t.match(off.stats(), { state: 'off', lastError: /^ENOTDIR/ })
  t.match(entries, [{ level: 'error', msg: /journal directory cannot be used; metering goes on in memory/ }])
  off.append([entry('agr_1', 1, 1)])
  const none = taking(off, [])
  await off.sending(none.id, [])
  off.delivered(none.id, [])
  off.dropped(none.id, [])
  off.putBack(none.id, [])
  await off.settle(none.id)
  t.same(await off.recover(), { pending: { entries: [], oldest: Infinity }, ambiguous: [] })
  await off.close()
  t.equal(off.stats().writeErrors, 0)
  t.equal(entries.length, 1, 'closing a journal that never opened has nothing to remove, and logs nothing more')

  const removed = memoryLogger()
  const gone = journal(t, join(dir, 'removed'), { logger: removed.logger })
  await gone.recover()
  await rm(join(dir, 'removed'), { recursive: true })
  await gone.recover()
  t.match(gone.stats(), { state: 'failing', writeErrors: 1, lastError: /^ENOENT/ })
  await gone.close()
  t.same(removed.entries.filter(entry => /could not be removed/.test(entry.msg!)), [], 'files already gone are not an error at close')
})

t.test('usage journaled before the journal opened is in its first write; close deletes the journal and its lock', async t => {
  const dir = t.testdir()
  const closing = journal(t, dir)
  closing.append([entry('agr_1', 1, 1000)])
  await closing.recover()
  const [own] = await journalFiles(dir)
  t.same(byPair(await replay(join(dir, own))), { '0/agr_1/searches': ['1', 1000] })
  const delivered = taking(closing, [entry('agr_1', 1, 1000)])
  await closing.sending(delivered.id, keysAt(delivered))
  closing.delivered(delivered.id, keysAt(delivered))
  // Recorded during the send: the take settling does not take the delivered record off twice.
  closing.append([entry('agr_1', 2, 2000)])
  await closing.settle(delivered.id)
  t.same(byPair(await replay(join(dir, own))), { '0/agr_1/searches': ['2', 2000] })
  const next = taking(closing, [entry('agr_1', 2, 2000)])
  await closing.sending(next.id, keysAt(next))
  closing.delivered(next.id, keysAt(next))
  await closing.settle(next.id)
  t.same(await replay(join(dir, own)), [])
  t.equal((await readdir(dir)).length, 2, 'its journal and its lock')
  await closing.close()
  t.same(await readdir(dir), [])
  t.equal(closing.stats().state, 'off')
  await closing.close()
})

t.test('a journal closed while it was still opening leaves no heartbeat behind', async t => {
  const dir = t.testdir()
  const { logger, entries } = memoryLogger()
  const brief = journal(t, dir, { logger, timing: { heartbeatMs: 5, staleMs: 60_000, retryMs: 1000 } })
  const heartbeats = watchIntervals(t)
  void brief.recover()
  await brief.close()
  t.same(await readdir(dir), [])
  t.equal(heartbeats.started, 1, 'the opening, queued before the close, started its heartbeat')
  t.equal(heartbeats.running.size, 0, 'and the close stopped it')
  t.same(entries, [])
})

t.test('close never rejects: a file it cannot remove is logged', async t => {
  const dir = t.testdir()
  const { logger, entries } = memoryLogger()
  const closing = journal(t, dir, { logger })
  await closing.recover()
  const lock = (await readdir(dir)).find(name => name.endsWith('.lock'))!
  await rm(join(dir, lock))
  await mkdir(join(dir, lock, 'in-the-way'), { recursive: true })
  await closing.close()
  t.match(entries, [{ level: 'error', msg: /journal files could not be removed at close/, obj: { err: Error, dir } }], 'with the error and the directory')
})

t.test('options are validated and name the one at fault', async t => {
  t.equal(resolveJournalConfig(undefined, false), undefined)
  t.match(resolveJournalConfig({ dir: 'relative/dir' }, false), { dir: join(process.cwd(), 'relative/dir'), syncInterval: 100, fsync: false })
  const fails = (value: unknown, option: string, shared = false): void => {
    t.throws(() => resolveJournalConfig(value, shared), { code: 'KINDE_METERING_INVALID_OPTION', option }, `${JSON.stringify(value)}: ${option}`)
  }
  fails('dir', 'journal')
  fails(null, 'journal')
  fails({ dir: '/tmp' }, 'journal', true)
  fails({}, 'journal.dir')
  fails({ dir: '' }, 'journal.dir')
  fails({ dir: '/tmp', syncInterval: 0 }, 'journal.syncInterval')
  fails({ dir: '/tmp', syncInterval: '100' }, 'journal.syncInterval')
  fails({ dir: '/tmp', syncInterval: Infinity }, 'journal.syncInterval')
  fails({ dir: '/tmp', fsync: 'yes' }, 'journal.fsync')
})
