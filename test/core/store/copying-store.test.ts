/**
 * The store protocol names takes and entries by key, never by object: a store that hands out
 * copies of everything it holds still bills each unit once, through delivery (failed sends put
 * back and merged with newer usage), through the journal (a process that dies after delivering
 * leaves nothing to send again) and through a close that runs out of time.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFile, readdir, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { MemoryStore, type DroppedRecord, type Take } from '../../../lib/index.js'
import { coreOn, emulator } from '../../fixtures.js'

/** A store that never hands out what it holds: every take is a deep copy. */
class CopyingStore extends MemoryStore {
  copies = 0
  override async take (): Promise<Take> {
    this.copies++
    return structuredClone(await super.take())
  }
}

const AGREEMENTS = ['agr_1', 'agr_2', 'agr_3', 'agr_4', 'agr_5']
const FEATURES = ['searches', 'llm_tokens', 'egress_bytes']

/** Records one round of usage: 0.1 per call (a sum no binary float gets right), and a level per agreement. */
function recordRound (core: ReturnType<typeof coreOn>, round: number, served: Map<string, number>): void {
  for (const agreement of AGREEMENTS) {
    for (const feature of FEATURES) {
      for (let call = 0; call < 7; call++) core.record({ agreementId: agreement }, feature, 0.1)
      served.set(`${agreement} ${feature}`, (served.get(`${agreement} ${feature}`) ?? 0) + 7)
    }
    core.set({ agreementId: agreement }, 'seats', 10 * round + AGREEMENTS.indexOf(agreement))
  }
}

/** The pid of a process that has ended. */
const deadPid = spawnSync(process.execPath, ['-e', '']).pid!

t.test('a copying store bills exactly once through failed sends, a put-back round and the journal', async t => {
  const kinde = await emulator(t, { customers: AGREEMENTS.length })
  const dir = t.testdir({ live: {}, after: {} })
  const store = new CopyingStore()
  const dropped: DroppedRecord[] = []
  const core = coreOn(t, kinde, {
    store,
    journal: { dir: join(dir, 'live') },
    retry: { attempts: 3, baseDelay: 1, maxDelay: 5 },
    onDrop: records => { dropped.push(...records) }
  })
  await core.ready()
  const served = new Map<string, number>()
  recordRound(core, 1, served)
  // A feature the plan lacks: Kinde refuses it, and it is reported dropped, once.
  core.record({ agreementId: 'agr_1' }, 'not_in_plan', 1)

  kinde.fault({ kind: 'status', status: 503, times: 10_000 })
  const failed = await core.flush()
  t.equal(failed.sent, 0, 'Kinde applied nothing')
  t.equal(failed.pending, AGREEMENTS.length * (FEATURES.length + 1) + 1, 'every entry was put back')
  kinde.clearFaults()

  recordRound(core, 2, served)
  kinde.fault({ kind: 'status', status: 429, rateLimitReset: 0.01, times: 3 })
  kinde.fault({ kind: 'status', status: 503, times: 3 })
  const sent = await core.flush()
  t.equal(sent.pending, 0, 'the retries of one flush got everything through')
  t.equal(sent.dropped, 1)
  t.equal(store.copies, 2, 'both flushes delivered copies')

  for (const [pair, calls] of served) {
    const [agreement, feature] = pair.split(' ')
    t.equal(kinde.usage(agreement, feature), (calls / 10).toFixed(1), `${pair}: every unit once`)
    t.equal(kinde.records.filter(record => record.applied && record.customer_agreement_id === agreement && record.billing_feature_code === feature).length,
      1, `${pair}: one record, the failed usage merged with the newer`)
  }
  for (const agreement of AGREEMENTS) t.equal(kinde.usage(agreement, 'seats'), String(20 + AGREEMENTS.indexOf(agreement)), 'the latest level')
  t.same(dropped.map(record => [record.feature, record.value, record.error?.status]), [['not_in_plan', '1', 400]])
  t.same(core.stats().pending, { pairs: 0, units: '0' })

  // The process dies here: a process started on its journal finds nothing left to send.
  const journal = (await readdir(join(dir, 'live'))).find(name => name.endsWith('.journal'))!
  await copyFile(join(dir, 'live', journal), join(dir, 'after', `${deadPid}-0000dead.journal`))
  await writeFile(join(dir, 'after', `${deadPid}-0000dead.lock`), JSON.stringify({ pid: deadPid, host: hostname(), id: `${deadPid}-0000dead` }))
  const records = kinde.records.length
  const next = coreOn(t, kinde, { journal: { dir: join(dir, 'after') }, deadLetter: false })
  await next.ready()
  t.match(next.stats().journal, { recovered: { journals: 1, pending: { records: 0, units: '0' }, ambiguous: { records: 0 } } })
  t.equal((await next.flush()).sent, 0)
  t.equal(kinde.records.length, records, 'nothing sent again')
})

t.test('a copying store: a close that runs out of time reports each pending unit once', async t => {
  const kinde = await emulator(t, { customers: AGREEMENTS.length })
  const dropped: DroppedRecord[] = []
  const core = coreOn(t, kinde, {
    store: new CopyingStore(),
    shutdownTimeout: 200,
    onDrop: (records, reason) => { if (reason === 'shutdown') dropped.push(...records) }
  })
  const served = new Map<string, number>()
  recordRound(core, 1, served)
  kinde.fault({ kind: 'status', status: 503, times: 100_000 })
  const closed = await core.close()
  t.equal(closed.sent, 0)
  t.equal(closed.droppedByReason.shutdown, served.size + AGREEMENTS.length)
  for (const [pair, calls] of served) {
    const [agreement, feature] = pair.split(' ')
    t.same(dropped.filter(record => record.customer.agreementId === agreement && record.feature === feature).map(record => record.value),
      [(calls / 10).toFixed(1)], `${pair}: reported once, exactly`)
  }
  t.equal(kinde.usage('agr_1', 'searches'), '0')
})
