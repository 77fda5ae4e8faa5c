/**
 * The connection pool to Kinde as a user meets it: what a failed request says in the logs.
 */
import t from 'tap'
import { coreOn, emulator, memoryLogger } from '../../fixtures.js'

t.test('a request that found no server is logged with Node\'s own error as its cause', async t => {
  const kinde = await emulator(t)
  const { entries, logger } = memoryLogger()
  const core = coreOn(t, kinde, { accessToken: 'static-token', domain: 'http://127.0.0.1:1', logger, shutdownTimeout: 20 })
  core.record({ agreementId: 'agr_1' }, 'searches', 1)
  t.match(await core.flush(), { sent: 0, pending: 1 })
  const warning = entries.find(entry => entry.level === 'warn' && /did not apply/.test(entry.msg ?? ''))
  t.match(warning?.obj.err, { errorCode: 'ECONNREFUSED', written: false, cause: { code: 'ECONNREFUSED', syscall: 'connect' } },
    'the cause keeps what Node said: the code and the system call that failed')
})
