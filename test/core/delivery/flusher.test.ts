/**
 * When flushes run and what each one says: the interval re-armed after every flush, and the one
 * info line a flush that did something logs.
 */
import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

/** A logger that keeps every entry and whose `flushed` resolves with the next flush's outcome, or rejects after `ms`. */
function flushWatch (ms = 5_000): { entries: ReturnType<typeof memoryLogger>['entries'], logger: any, flushed: () => Promise<any> } {
  const { entries, logger } = memoryLogger()
  let waiting: ((outcome: any) => void) | undefined
  const debug = logger.debug
  logger.debug = (obj: any, msg?: string) => {
    debug(obj, msg)
    if (msg === 'kinde-metering: flush') waiting?.(obj)
  }
  return {
    entries,
    logger,
    flushed: async () => await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no flush within ${ms} ms`)), ms)
      waiting = outcome => { clearTimeout(timer); waiting = undefined; resolve(outcome) }
    })
  }
}

t.test('the interval flushes again after each flush, not once', async t => {
  const kinde = await emulator(t)
  const { logger, flushed } = flushWatch()
  const core = coreOn(t, kinde, { flushInterval: 20, logger })
  for (let round = 1; round <= 3; round++) {
    core.record({ agreementId: 'agr_1' }, 'searches', round)
    t.match(await flushed(), { sent: 1 }, `interval flush ${round}`)
  }
  t.equal(kinde.usage('agr_1', 'searches'), '6')
})

t.test('a flush that sent or dropped logs one info line saying what; a flush that did nothing logs none', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { logger })
  const infos = (): Array<{ obj: any, msg?: string }> => entries.filter(entry => entry.level === 'info')
  await core.flush()
  t.same(infos(), [], 'nothing pending: nothing said')
  core.record({ agreementId: 'agr_1' }, 'searches', 1.25)
  core.record({ agreementId: 'agr_2' }, 'searches', 2)
  await core.flush()
  t.match(infos(), [{ obj: { records: 2, units: '3.25', dropped: 0, pending: 0, durationMs: Number } }])
  core.record({ agreementId: 'agr_unknown' }, 'searches', 1)
  await core.flush()
  t.match(infos()[1], { obj: { records: 0, units: '0', dropped: 1, pending: 0 } }, 'a flush that only dropped says so')
  t.same(infos().map(entry => entry.msg), ['kinde-metering: flush sent 2 record(s)', 'kinde-metering: flush sent 0 record(s), dropped 1'])
})
