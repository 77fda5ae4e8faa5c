/**
 * The adapters' `checkSetup` option: off by default; when on, the setup check runs in the
 * background at start and its summary reaches the app's logger; close abandons a check still
 * running; an invalid value throws at registration naming the option.
 */
import t from 'tap'
import Fastify from 'fastify'
import { kindeMetering } from '../../lib/index.js'
import { kindeMetering as expressMetering } from '../../lib/express.js'
import { emulator, pluginOptions } from '../fixtures.js'

/** A logger that resolves `summary` with the first setup-check entry it is given. */
function summaryLogger () {
  const entries: Array<{ level: string, obj: any, msg: string }> = []
  let resolve: (entry: { level: string, obj: any, msg: string }) => void
  const summary = new Promise<{ level: string, obj: any, msg: string }>(r => { resolve = r })
  const at = (level: string) => (obj: any, msg: string) => {
    const entry = { level, obj, msg }
    entries.push(entry)
    if (String(msg).includes('setup check')) resolve(entry)
  }
  const logger: any = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal'), trace: at('trace'), level: 'info' }
  logger.child = () => logger
  return { entries, summary, logger }
}

t.test('off by default: nothing is asked of Kinde at start', async t => {
  const kinde = await emulator(t)
  const app = Fastify()
  await app.register(kindeMetering, pluginOptions(kinde))
  await app.ready()
  await app.close()
  t.equal(kinde.calls.token, 0)
})

t.test('checkSetup: true logs a passing summary through the app\'s logger', async t => {
  const kinde = await emulator(t)
  const { summary, logger } = summaryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde, { checkSetup: true }))
  await app.ready()
  const entry = await summary
  t.equal(entry.level, 'info')
  t.equal(entry.msg, `kinde-metering: setup check of ${kinde.url}: 3 passed, 0 failed, 0 could not be verified`)
  t.equal(entry.obj.setupCheck.ok, true)
  t.equal(kinde.calls.meter_usage, 0, 'no usage recorded')
})

t.test('a failing check is logged as an error naming each failure and what to do', async t => {
  const kinde = await emulator(t, { users: [{ id: 'kp_free' }] })
  const { summary, logger } = summaryLogger()
  const app = Fastify({ loggerInstance: logger })
  t.teardown(() => app.close())
  await app.register(kindeMetering, pluginOptions(kinde, { checkSetup: { features: ['searches'], customers: [{ userId: 'kp_free' }] } }))
  const entry = await summary
  t.equal(entry.level, 'error')
  t.match(entry.msg, /^kinde-metering: setup check failed \(3 passed, 1 failed, 0 could not be verified\): customer: userId=kp_free × searches: user kp_free is not a billing customer \(in Kinde, subscribe the user to a plan/)
})

t.test('closing the app abandons a check still running, and logs nothing of it', async t => {
  const kinde = await emulator(t)
  kinde.fault({ endpoint: 'token', kind: 'delay', delayMs: 30_000 })
  const { entries, logger } = summaryLogger()
  const app = Fastify({ loggerInstance: logger })
  await app.register(kindeMetering, pluginOptions(kinde, { checkSetup: true }))
  await app.ready()
  await app.close()
  t.same(entries.filter(entry => entry.msg.includes('setup check')), [])
})

t.test('the Express middleware runs it too, and close() waits for it', async t => {
  const kinde = await emulator(t)
  const { summary, logger } = summaryLogger()
  const middleware = expressMetering({ ...pluginOptions(kinde), customer: undefined, logger, checkSetup: true })
  const entry = await summary
  await middleware.close()
  t.equal(entry.level, 'info')
  t.match(entry.msg, /3 passed, 0 failed/)
})

t.test('an invalid checkSetup throws at registration, naming the option', async t => {
  const kinde = await emulator(t)
  const cases: Array<[object, string]> = [
    [{ checkSetup: 'yes' }, 'checkSetup'],
    [{ checkSetup: null }, 'checkSetup'],
    [{ checkSetup: true, accessToken: 'token', clientId: undefined, clientSecret: undefined }, 'checkSetup'],
    [{ checkSetup: { customers: [{ userId: 'kp_1' }] } }, 'checkSetup.features'],
    [{ checkSetup: { features: ['searches'], customers: [{ user: 'kp_1' }] } }, 'checkSetup.customers[0]']
  ]
  for (const [extra, option] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(kindeMetering, { ...pluginOptions(kinde), ...extra }).ready() }, { name: 'InvalidOptionError', option }, option)
    await app.close()
  }
  t.equal(kinde.calls.token, 0)
})
