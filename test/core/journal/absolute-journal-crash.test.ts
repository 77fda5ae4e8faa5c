/**
 * Absolute meters through a crash: a server with a journal takes seat values and is killed with
 * SIGKILL at a random moment; the next server on the directory delivers what it left. Kinde must
 * end, for every agreement, with a value that was set, never older than the last one the journal
 * had made durable (acknowledged more than one batch interval before the kill).
 */
import t from 'tap'
import { readdir } from 'node:fs/promises'
import { Pool } from 'undici'
import { emulator } from '../../fixtures.js'
import { startJournalServer } from './children.js'

const SYNC_INTERVAL = 50 // ms
/** Scheduling slack on a busy machine, beyond the batch interval: timers fire late, writes take time. */
const SLACK = 100 // ms
/** One connection per agreement, each setting 1, 2, 3 … in order, so later values are greater. */
const AGREEMENTS = 6

/** Acknowledged values of one agreement, with the time of each acknowledgement. */
interface Acks { values: number[], at: number[], requested: number }

async function load (port: number, acks: Acks[]): Promise<void> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: AGREEMENTS })
  await Promise.all(acks.map(async (ack, i) => {
    try {
      for (let value = 1; ; value++) {
        ack.requested = value
        const { statusCode, body } = await pool.request({ method: 'PUT', path: `/seats/${value}`, headers: { 'x-agreement': `agr_${i + 1}` } })
        await body.text()
        if (statusCode === 200) {
          ack.values.push(value)
          ack.at.push(performance.now())
        }
      }
    } catch {
      // The server was killed.
    }
  }))
  await pool.destroy()
}


for (const [trial, ambiguous] of (['retry', 'drop', 'retry'] as const).entries()) {
  t.test(`trial ${trial + 1}, ambiguous: ${ambiguous}: killed at a random moment, Kinde ends with a value set, never older than the durable one`, async t => {
    const dir = t.testdir()
    const kinde = await emulator(t, { customers: AGREEMENTS })
    // Sends take a while, so that kills often land in the middle of a flush.
    kinde.fault({ kind: 'delay', delayMs: 15, probability: 1 })

    const first = startJournalServer(t, kinde, SYNC_INTERVAL, dir, ambiguous)
    const { port } = await first.next('port')
    const acks: Acks[] = Array.from({ length: AGREEMENTS }, () => ({ values: [], at: [], requested: 0 }))
    const loaded = load(port, acks)
    await new Promise(resolve => setTimeout(resolve, 500 + Math.random() * 700))
    const killedAt = performance.now()
    await first.kill()
    await loaded

    const second = startJournalServer(t, kinde, SYNC_INTERVAL, dir, ambiguous)
    const { recovered } = await second.next('recovered')
    second.process.kill('SIGTERM')
    await second.next('closed')
    t.equal(await second.exited, 0)
    t.equal(recovered.journals, 1, 'the second server took the journal of the first over')
    t.same(second.lines.filter(line => 'dropped' in line), [], 'no value dropped, not even one in flight at the kill')

    for (const [i, ack] of acks.entries()) {
      const agreement = `agr_${i + 1}`
      const durable = ack.values.filter((_, n) => ack.at[n] < killedAt - SYNC_INTERVAL - SLACK).at(-1) ?? 0
      const value = Number(kinde.usage(agreement, 'seats'))
      t.comment(`${agreement}: acknowledged up to ${ack.values.at(-1) ?? 0}, durable ${durable}, Kinde has ${value}`)
      t.ok(Number.isInteger(value) && value >= 1 && value <= ack.requested, `${agreement}: a value that was set`)
      t.ok(value >= durable, `${agreement}: never older than the last durable value`)
    }
    t.ok(acks.some(ack => ack.values.some((_, n) => ack.at[n] < killedAt - SYNC_INTERVAL - SLACK)), 'values were durable before the kill')
    t.same(await readdir(dir), [], 'every journal was delivered and removed')
  })
}
