/**
 * The Management API token as Kinde bills it (every M2M token fetched costs): reused while it
 * lasts, replaced a little before it expires, never carried to Kinde expired.
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { coreOn, emulator } from '../../fixtures.js'

t.test('a token is reused while it lasts and replaced a tenth of its lifetime before it expires', async t => {
  const kinde = await emulator(t, { tokenTtlSeconds: 1 })
  const core = coreOn(t, kinde)
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  const first = await core.flush()
  // The token was fetched within the first flush: it is at most this old when the others start.
  const fetchedBy = first.startedAt + first.durationMs
  core.record({ agreementId: 'agr_2' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  core.record({ agreementId: 'agr_3' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.calls.token, 1, 'one token for three flushes within its lifetime')
  // Past nine tenths of the 1 s lifetime, the token is due for replacement though Kinde still takes it.
  await sleep(fetchedBy + 950 - Date.now())
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 1 })
  t.equal(kinde.calls.token, 2, 'replaced before it expired')
  t.same(kinde.records.filter(record => record.status !== 200), [], 'no send carried a token Kinde had to refuse')
  t.equal(kinde.usage('agr_1', 'searches'), '2')
})
