/**
 * Crash safety end to end: a metered server with a journal serves load and is killed with
 * SIGKILL at a moment drawn from a seeded PRNG (the seed is in the test's name, so a failure can be
 * replayed); a new server on the same directory delivers what the first left. The emulator's
 * totals are then held to the journal's promise:
 * - under-count: at most the usage acknowledged within two batch intervals (`syncInterval`)
 *   before the kill, plus what was reported dropped: the batch being collected and, when the kill
 *   lands during a write, the batch being written (the README's "the last syncInterval" counts
 *   only the first);
 * - over-count: at most what the killed process had sent in its unfinished flush (sent again
 *   under `ambiguous: 'retry'`, reported under `'drop'`), plus requests it counted whose
 *   responses never reached the client.
 */
import t from 'tap'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { readDeadLetter } from '../../../lib/core/dead-letter/file.js'
import { Pool } from 'undici'
import type { KindeEmulator } from '../../../lib/testing.js'
import { emulator } from '../../fixtures.js'
import { startJournalServer } from './children.js'

const SYNC_INTERVAL = 50 // ms
const CONNECTIONS = 8
const CUSTOMERS = 10

function appliedUnits (kinde: KindeEmulator): number {
  return kinde.records.reduce((sum, record) => sum + (record.applied ? Number(record.meter_value) : 0), 0)
}

/** A small seeded PRNG (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

/**
 * Requests from CONNECTIONS loops until the server goes away; the time of every acknowledged one.
 * `onAck` is called after each acknowledgement is counted.
 */
async function load (port: number, acks: number[], random: () => number, onAck: () => void): Promise<void> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS })
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    try {
      for (;;) {
        const agreement = `agr_${1 + Math.floor(random() * CUSTOMERS)}`
        const { statusCode, body } = await pool.request({ method: 'GET', path: '/hit', headers: { 'x-agreement': agreement } })
        await body.text()
        if (statusCode === 200) {
          acks.push(performance.now())
          onAck()
        }
      }
    } catch {
      // The server was killed.
    }
  }))
  await pool.destroy()
}


for (const [trial, ambiguous] of (['retry', 'drop', 'retry', 'drop'] as const).entries()) {
  const seed = 1_000 + trial
  t.test(`trial ${trial + 1}, ambiguous: ${ambiguous}, seed ${seed}: killed at a drawn moment, the next server on the directory delivers what it left`, async t => {
    const random = prng(seed)
    const dir = t.testdir()
    const kinde = await emulator(t, { customers: CUSTOMERS })
    // Sends take a while, so that kills often land in the middle of a flush.
    kinde.fault({ kind: 'delay', delayMs: 15, probability: 1 })

    const first = startJournalServer(t, kinde, SYNC_INTERVAL, dir, ambiguous)
    const { port } = await first.next('port')
    const acks: number[] = []
    // The moment of the kill is drawn as a count of acknowledged requests, so it falls at the
    // same point of the load however fast or loaded the machine is.
    const killAfter = 100 + Math.floor(random() * 400)
    let reached!: () => void
    const killMoment = new Promise<void>(resolve => { reached = resolve })
    const loaded = load(port, acks, random, () => { if (acks.length === killAfter) reached() })
    await Promise.race([killMoment, loaded.then(() => { throw new Error(`the load ended after ${acks.length} of ${killAfter} requests`) })])
    const killedAt = performance.now()
    await first.kill()
    await loaded

    const second = startJournalServer(t, kinde, SYNC_INTERVAL, dir, ambiguous)
    const { recovered } = await second.next('recovered')
    second.process.kill('SIGTERM')
    await second.next('closed')
    t.equal(await second.exited, 0)
    const droppedAmbiguous = second.lines.filter(line => line.reason === 'ambiguous').reduce((sum, line) => sum + line.dropped, 0)
    t.same(second.lines.filter(line => 'dropped' in line && line.reason !== 'ambiguous'), [], 'nothing else dropped')

    const total = appliedUnits(kinde)
    const delta = total - acks.length
    // Usage is durable once the write of the batch it was recorded in completes. A kill loses the
    // batch being collected (one interval) and, when it lands during a write, that write's batch:
    // a second interval at most, as a batch's write takes far less than the interval.
    const window = 2 * SYNC_INTERVAL
    const inWindow = acks.filter(at => at >= killedAt - window).length
    const lost = -delta - droppedAmbiguous
    const newestFirst = [...acks].sort((a, b) => b - a)
    const lossSpan = lost > 0 ? `the oldest acknowledgement that could be lost was ${(killedAt - newestFirst[Math.min(lost, acks.length) - 1]).toFixed(1)} ms before the kill` : 'nothing lost'
    t.comment(`killed after ${killAfter} acknowledged requests; acknowledged ${acks.length}, delivered ${total} (${delta >= 0 ? '+' : ''}${delta}); ` +
      `acknowledged within ${window} ms of the kill ${inWindow} (${lossSpan}); taken over ${recovered.pending.units} units ` +
      `(${recovered.pending.records} records), of which in flight at the kill ${recovered.ambiguous.units} (${recovered.ambiguous.records} records)`)
    t.equal(recovered.journals, 1, 'the second server took the journal of the first over')
    t.ok(lost <= inWindow, `under-count: at most the batch being collected and the one being written (${inWindow}), beyond what was reported dropped (${droppedAmbiguous})`)
    const inFlightAtKill = Number(recovered.ambiguous.units)
    if (ambiguous === 'drop') t.equal(droppedAmbiguous, inFlightAtKill, 'under drop, what was in flight is reported, not sent again')
    const overAllowed = (ambiguous === 'retry' ? inFlightAtKill : 0) + CONNECTIONS
    t.ok(delta <= overAllowed, `over-count: at most what was in flight at the kill (${overAllowed})`)
    t.same((await readdir(dir)).filter(name => name !== 'dead-letter'), [], 'every journal was delivered and removed')
    const deadLettered = (await readDeadLetter(join(dir, 'dead-letter'))).records.reduce((sum, record) => sum + Number(record.value), 0)
    t.equal(deadLettered, droppedAmbiguous, 'what was reported dropped is in the dead letter')
  })
}
