/**
 * The dead letter (option `deadLetter`): every record reported dropped is kept on disk, before
 * `onDrop` sees it, with what a replay needs; a crash leaves at most a torn line; a directory that
 * cannot be written loses nothing else.
 */
import t from 'tap'
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { InvalidOptionError, type DroppedRecord, type DropReason } from '../../../lib/index.js'
import { appendDeadLetter, readDeadLetter } from '../../../lib/core/dead-letter/file.js'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

/** Every line of every dead-letter file in `dir`, read synchronously (as an onDrop could). */
function linesOnDisk (dir: string): string[] {
  return readdirSync(dir).flatMap(name => readFileSync(join(dir, name), 'utf8').split('\n').filter(line => line !== ''))
}

/** The files in `dir` this process holds a descriptor open on (Linux: /proc/self/fd). */
function openIn (dir: string): string[] {
  const fds = readdirSync('/proc/self/fd')
  return fds.flatMap(fd => {
    try {
      const target = readlinkSync(join('/proc/self/fd', fd))
      return target.startsWith(`${dir}/`) ? [target] : []
    } catch {
      return [] // the descriptor readdir itself used, closed since
    }
  })
}

t.test('Kinde down for a whole shutdown: every pending record is dead-lettered with reason shutdown, on disk before onDrop sees it', async t => {
  const kinde = await emulator(t)
  kinde.fault({ kind: 'status', status: 503, times: 1_000_000 })
  const dir = join(t.testdir(), 'dead')
  const seen: Array<{ reason: DropReason, records: DroppedRecord[], linesOnDisk: number }> = []
  const core = coreOn(t, kinde, {
    deadLetter: { dir },
    shutdownTimeout: 50,
    onDrop: (records, reason) => { seen.push({ reason, records, linesOnDisk: linesOnDisk(dir).length }) }
  })
  core.record({ agreementId: 'agr_1' }, 'searches', 1.5)
  core.record({ agreementId: 'agr_1' }, 'searches', 3)
  core.record({ customerId: 'cus_2' }, 'egress_bytes', 0.000001)
  const outcome = await core.close()
  t.equal(outcome.dropped, 2)
  t.equal(seen.length, 1)
  t.equal(seen[0].reason, 'shutdown')
  t.equal(seen[0].linesOnDisk, 2, 'both records were on disk when onDrop was called')

  const { records, skipped } = await readDeadLetter(dir)
  t.equal(skipped, 0)
  t.match(records.map(({ customer, feature, value, meterType, reason }) => ({ customer, feature, value, meterType, reason })), [
    { customer: { agreementId: 'agr_1' }, feature: 'searches', value: '4.5', meterType: 'delta', reason: 'shutdown' },
    { customer: { customerId: 'cus_2' }, feature: 'egress_bytes', value: '0.000001', meterType: 'delta', reason: 'shutdown' }
  ])
  for (const record of records) {
    t.match(record.id, /^[0-9a-f-]{36}$/)
    t.ok(Date.parse(record.timestamp) <= Date.parse(record.time), 'usage time, then the time it was dead-lettered')
  }
  t.not(records[0].id, records[1].id)
  t.same(core.stats().deadLetter, {
    dir,
    state: 'open',
    byReason: {
      rejected: { records: 0, units: '0' },
      ambiguous: { records: 0, units: '0' },
      no_agreement: { records: 0, units: '0' },
      overflow: { records: 0, units: '0' },
      shutdown: { records: 2, units: '4.500001' }
    },
    writeErrors: 0,
    lastError: null
  })
})

t.test('a rejected record is kept with its resolved agreement and Kinde\'s error body; an unknown customer with reason no_agreement', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  const core = coreOn(t, kinde, { deadLetter: { dir } })
  core.record({ agreementId: 'agr_1' }, 'not_in_plan', 2)
  core.record({ customerId: 'cus_nobody' }, 'searches', 7)
  await core.flush()
  await core.close()
  const { records } = await readDeadLetter(dir)
  const rejected = records.find(record => record.reason === 'rejected')!
  t.equal(rejected.agreementId, 'agr_1')
  t.equal(rejected.error?.status, 400)
  t.match(JSON.stringify(rejected.error?.body), /FEATURE_NOT_FOUND/)
  const unknown = records.find(record => record.reason === 'no_agreement')!
  t.same(unknown.customer, { customerId: 'cus_nobody' })
  t.equal(unknown.value, '7')
  t.equal(core.stats().deadLetter?.byReason.rejected.units, '2')
})

t.test('usage of a process started on a dead letter counts what earlier processes left', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  kinde.fault({ kind: 'status', status: 503, times: 1_000_000 })
  const first = coreOn(t, kinde, { deadLetter: { dir }, shutdownTimeout: 20 })
  first.record({ agreementId: 'agr_1' }, 'searches', 0.1)
  first.record({ agreementId: 'agr_2' }, 'searches', 0.2)
  await first.close()
  const second = coreOn(t, kinde, { deadLetter: { dir }, shutdownTimeout: 20 })
  second.record({ agreementId: 'agr_3' }, 'searches', 0.3)
  await second.close()
  t.same(second.stats().deadLetter?.byReason.shutdown, { records: 3, units: '0.6' })
})

t.test('other files in the dead-letter directory (a note, a folder) are not read: nothing skipped, earlier records still counted', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  kinde.fault({ kind: 'status', status: 503, times: 1_000_000 })
  const first = coreOn(t, kinde, { deadLetter: { dir }, shutdownTimeout: 20 })
  first.record({ agreementId: 'agr_1' }, 'searches', 0.5)
  await first.close()
  writeFileSync(join(dir, 'notes.txt'), 'kept by hand\nnot a dead letter\n')
  mkdirSync(join(dir, 'archive'))
  const { records, skipped } = await readDeadLetter(dir)
  t.equal(records.length, 1)
  t.equal(skipped, 0, 'no line of the note counts as damaged')
  const second = coreOn(t, kinde, { deadLetter: { dir } })
  // close() waits for the dead letter, which reads what earlier processes left before any write.
  await second.close()
  t.same(second.stats().deadLetter?.byReason.shutdown, { records: 1, units: '0.5' }, 'what the first process left, counted by the next')
})

t.test('a crash leaves at most a torn last line: it is skipped, so is a damaged line, and the rest is read', async t => {
  const dir = t.testdir()
  const record = { t: 'R', customer: { agreementId: 'agr_1' }, feature: 'searches', value: '1', meterType: 'delta', timestamp: '2026-01-01T00:00:00.000Z', reason: 'shutdown', time: '2026-01-01T00:00:01.000Z' } as const
  await appendDeadLetter(dir, 'a.deadletter', [{ ...record, id: 'one' }, { ...record, id: 'two' }, { ...record, id: 'three' }])
  const path = join(dir, 'a.deadletter')
  const [first, second, third] = readFileSync(path, 'utf8').split('\n')
  // The second line damaged on disk; the third cut short by a crash.
  writeFileSync(path, `${first}\n${second.replace('"1"', '"9"')}\n${third.slice(0, 40)}`)
  const contents = await readDeadLetter(dir)
  t.same(contents.records.map(r => r.id), ['one'])
  t.equal(contents.skipped, 2)
  t.same(await readDeadLetter(join(dir, 'none')), { records: [], replayed: 0, skipped: 0 }, 'a directory never written holds nothing')
})

t.test('what a replay wrote is read back: records Kinde accepted are no longer pending; one that failed again has its latest reason and error, whichever file holds it', async t => {
  const dir = t.testdir()
  const record = { t: 'R', customer: { agreementId: 'agr_1' }, feature: 'searches', value: '1', meterType: 'delta', timestamp: '2026-01-01T00:00:00.000Z', time: '2026-01-01T00:00:01.000Z' } as const
  await appendDeadLetter(dir, 'a.deadletter', [
    { ...record, id: 'one', reason: 'shutdown' },
    { ...record, id: 'two', reason: 'shutdown' },
    { ...record, id: 'three', reason: 'ambiguous', error: { status: 500, message: 'Kinde answered 500' } }
  ])
  // Two replays: the later one wrote to the file read first.
  await appendDeadLetter(dir, 'b.deadletter', [{ t: 'F', ids: ['two'], reason: 'rejected', error: { status: 400, message: 'Kinde answered 400', body: { errors: [{ code: 'FEATURE_NOT_FOUND' }] } }, time: '2026-01-03T00:00:00.000Z' }])
  await appendDeadLetter(dir, 'c.deadletter', [
    { t: 'F', ids: ['two', 'three'], reason: 'ambiguous', time: '2026-01-02T00:00:00.000Z' },
    { t: 'M', ids: ['one'], time: '2026-01-02T00:00:00.000Z' }
  ])
  const contents = await readDeadLetter(dir)
  t.same(contents.records.map(({ id, reason, error }) => ({ id, reason, error })), [
    { id: 'two', reason: 'rejected', error: { status: 400, message: 'Kinde answered 400', body: { errors: [{ code: 'FEATURE_NOT_FOUND' }] } } },
    { id: 'three', reason: 'ambiguous', error: undefined }
  ])
  t.equal(contents.replayed, 1)
  t.equal(contents.skipped, 0)
})

t.test('a dead-letter path that is a file is an error for its reader (replay), not an empty dead letter', async t => {
  const file = join(t.testdir(), 'a-file')
  writeFileSync(file, '')
  await t.rejects(readDeadLetter(file), { code: 'ENOTDIR' })
})

t.test('a dead letter that cannot be written is logged once and counted; the records still reach onDrop', async t => {
  const kinde = await emulator(t)
  const blocker = join(t.testdir(), 'a-file')
  writeFileSync(blocker, '')
  const { entries, logger } = memoryLogger()
  const dropped: DroppedRecord[] = []
  const core = coreOn(t, kinde, { deadLetter: { dir: join(blocker, 'dead') }, logger, onDrop: records => { dropped.push(...records) } })
  core.record({ agreementId: 'agr_1' }, 'not_in_plan', 1)
  await core.flush()
  core.record({ agreementId: 'agr_2' }, 'not_in_plan', 2)
  await core.flush()
  t.same(dropped.map(record => record.value), ['1', '2'])
  const failures = entries.filter(entry => /dead letter cannot be written/.test(entry.msg ?? ''))
  t.equal(failures.length, 1, 'logged once')
  t.match(failures[0], {
    level: 'error',
    obj: { err: { code: 'ENOTDIR' }, dir: join(blocker, 'dead'), records: [{ customer: { agreementId: 'agr_1' }, feature: 'not_in_plan', value: '1', reason: 'rejected' }] }
  }, 'with the error, the directory, and the records it could not keep')
  t.match(core.stats().deadLetter, { state: 'failing', writeErrors: 2, lastError: /^ENOTDIR/ })
})

t.test('a long-running process keeps no file of the dead letter open between drops', async t => {
  const kinde = await emulator(t)
  const dir = t.testdir()
  const core = coreOn(t, kinde, { deadLetter: { dir } })
  for (let i = 1; i <= 3; i++) {
    core.record({ agreementId: 'agr_1' }, 'not_in_plan', i)
    await core.flush()
  }
  t.equal(core.stats().deadLetter?.byReason.rejected.records, 3, 'three drops, three writes')
  t.same(openIn(dir), [], 'each write closed the file it opened')
})

t.test('option deadLetter is validated at registration, naming the option; with journal it defaults to a folder of the journal, open and empty until a record is dropped', async t => {
  const kinde = await emulator(t)
  t.throws(() => coreOn(t, kinde, { deadLetter: 'dead' as any }), new InvalidOptionError('deadLetter', 'must be an object such as { dir }, or false'))
  t.throws(() => coreOn(t, kinde, { deadLetter: { dir: '' } }), new InvalidOptionError('deadLetter.dir', 'must be a non-empty path'))
  const base = t.testdir()
  const journaled = coreOn(t, kinde, { journal: { dir: join(base, 'journal') } })
  t.same(journaled.stats().deadLetter, {
    dir: join(base, 'journal', 'dead-letter'),
    state: 'open',
    byReason: {
      rejected: { records: 0, units: '0' },
      ambiguous: { records: 0, units: '0' },
      no_agreement: { records: 0, units: '0' },
      overflow: { records: 0, units: '0' },
      shutdown: { records: 0, units: '0' }
    },
    writeErrors: 0,
    lastError: null
  }, 'open before anything was dropped to it, nothing counted')
  const off = coreOn(t, kinde, { journal: { dir: join(base, 'other') }, deadLetter: false })
  t.equal(off.stats().deadLetter, undefined)
  t.equal(coreOn(t, kinde).stats().deadLetter, undefined, 'no dead letter without journal or deadLetter')
})

t.test('usage dropped as overflow, and as ambiguous under ambiguous: drop, is kept with its reason', async t => {
  const kinde = await emulator(t)
  kinde.fault({ kind: 'status', status: 500 })
  const dir = t.testdir()
  const core = coreOn(t, kinde, { deadLetter: { dir }, ambiguous: 'drop', maxPendingPairs: 1 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  core.record({ agreementId: 'agr_2' }, 'searches', 2)
  await core.flush()
  await core.close()
  const { records } = await readDeadLetter(dir)
  t.match(records.map(({ customer, reason, value, error }) => ({ customer, reason, value, error })), [
    { customer: { agreementId: 'agr_2' }, reason: 'overflow', value: '2' },
    { customer: { agreementId: 'agr_1' }, reason: 'ambiguous', value: '1', error: { status: 500 } }
  ])
  t.equal(kinde.usage('agr_1', 'searches'), '0')
})

t.test('a level dropped at shutdown is dead-lettered as absolute, and replay keeps it rather than undo a newer value', async t => {
  const kinde = await emulator(t)
  kinde.fault({ kind: 'status', status: 503, times: 1_000_000 })
  const dir = join(t.testdir(), 'dead')
  const core = coreOn(t, kinde, { deadLetter: { dir }, shutdownTimeout: 50 })
  core.set({ agreementId: 'agr_1' }, 'seats', 4)
  core.set({ agreementId: 'agr_1' }, 'seats', 7)
  t.equal((await core.close()).dropped, 1)
  const { records } = await readDeadLetter(dir)
  t.match(records, [{ feature: 'seats', value: '7', meterType: 'absolute', reason: 'shutdown' }], 'the latest level, marked absolute')
})
