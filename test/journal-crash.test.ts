/**
 * Crash safety end to end: a metered server with a journal serves load and is killed with
 * SIGKILL at a random moment; a new server on the same directory delivers what the first left.
 * The emulator's totals are then held to the promise of the journal:
 * - under-count: at most the usage acknowledged within one batch interval before the kill;
 * - over-count: at most what the killed process had sent in its unfinished flush (sent again
 *   under `ambiguous: 'retry'`, reported under `'drop'`), plus requests it counted whose
 *   responses never reached the client.
 */
import t, { type Test } from 'tap'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { readDeadLetter } from '../lib/core/dead-letter-file.js'
import { Pool } from 'undici'
import type { KindeEmulator } from '../lib/testing.js'
import { emulator } from './fixtures.js'
import { startChild, type Child } from './journal/children.js'
import type { ServerConfig } from './journal/server.js'

const SYNC_INTERVAL = 50 // ms
/** Scheduling slack on a busy machine, beyond the batch interval: timers fire late, writes take time. */
const SLACK = 100 // ms
const CONNECTIONS = 8
const CUSTOMERS = 10

function appliedUnits (kinde: KindeEmulator): number {
  return kinde.records.reduce((sum, record) => sum + (record.applied ? Number(record.meter_value) : 0), 0)
}

/** Requests from CONNECTIONS loops until the server goes away; the time of every acknowledged one. */
async function load (port: number, acks: number[]): Promise<void> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS })
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    try {
      for (;;) {
        const agreement = `agr_${1 + Math.floor(Math.random() * CUSTOMERS)}`
        const { statusCode, body } = await pool.request({ method: 'GET', path: '/hit', headers: { 'x-agreement': agreement } })
        await body.text()
        if (statusCode === 200) acks.push(performance.now())
      }
    } catch {
      // The server was killed.
    }
  }))
  await pool.destroy()
}

function startServer (t: Test, kinde: KindeEmulator, dir: string, ambiguous: 'retry' | 'drop'): Child {
  const config: ServerConfig = {
    kinde: { url: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
    dir,
    ambiguous,
    syncInterval: SYNC_INTERVAL,
    flushInterval: 150
  }
  return startChild(t, 'server.ts', [JSON.stringify(config)])
}

for (const [trial, ambiguous] of (['retry', 'drop', 'retry', 'drop'] as const).entries()) {
  t.test(`trial ${trial + 1}, ambiguous: ${ambiguous}: killed at a random moment, the next server on the directory delivers what it left`, async t => {
    const dir = t.testdir()
    const kinde = await emulator(t, { customers: CUSTOMERS })
    // Sends take a while, so that kills often land in the middle of a flush.
    kinde.fault({ kind: 'delay', delayMs: 15, probability: 1 })

    const first = startServer(t, kinde, dir, ambiguous)
    const { port } = await first.next('port')
    const acks: number[] = []
    const loaded = load(port, acks)
    await new Promise(resolve => setTimeout(resolve, 300 + Math.random() * 700))
    const killedAt = performance.now()
    await first.kill()
    await loaded

    const second = startServer(t, kinde, dir, ambiguous)
    const { recovered } = await second.next('recovered')
    second.process.kill('SIGTERM')
    await second.next('closed')
    t.equal(await second.exited, 0)
    const droppedAmbiguous = second.lines.filter(line => line.reason === 'ambiguous').reduce((sum, line) => sum + line.dropped, 0)
    t.same(second.lines.filter(line => 'dropped' in line && line.reason !== 'ambiguous'), [], 'nothing else dropped')

    const total = appliedUnits(kinde)
    const lostWindow = acks.filter(at => at >= killedAt - SYNC_INTERVAL - SLACK).length
    const oneInterval = acks.filter(at => at >= killedAt - SYNC_INTERVAL).length
    const delta = total - acks.length
    t.comment(`acknowledged ${acks.length}, delivered ${total} (${delta >= 0 ? '+' : ''}${delta}); ` +
      `acknowledged within ${SYNC_INTERVAL} ms of the kill ${oneInterval}, within ${SYNC_INTERVAL + SLACK} ms ${lostWindow}; taken over ${recovered.pending.units} units ` +
      `(${recovered.pending.records} records), of which in flight at the kill ${recovered.ambiguous.units} (${recovered.ambiguous.records} records)`)
    t.ok(acks.length > 50, 'the first server served load')
    t.equal(recovered.journals, 1, 'the second server took the journal of the first over')
    t.ok(delta >= -(lostWindow + droppedAmbiguous), 'under-count: at most one batch interval of usage (and what was reported dropped)')
    const inFlightAtKill = Number(recovered.ambiguous.units)
    if (ambiguous === 'drop') t.equal(droppedAmbiguous, inFlightAtKill, 'under drop, what was in flight is reported, not sent again')
    const overAllowed = (ambiguous === 'retry' ? inFlightAtKill : 0) + CONNECTIONS
    t.ok(delta <= overAllowed, `over-count: at most what was in flight at the kill (${overAllowed})`)
    t.same((await readdir(dir)).filter(name => name !== 'dead-letter'), [], 'every journal was delivered and removed')
    const deadLettered = (await readDeadLetter(join(dir, 'dead-letter'))).records.reduce((sum, record) => sum + Number(record.value), 0)
    t.equal(deadLettered, droppedAmbiguous, 'what was reported dropped is in the dead letter')
  })
}
