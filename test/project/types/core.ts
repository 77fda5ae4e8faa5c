/**
 * Type tests of the framework-free core, the errors and `kinde-metering/testing`, against the
 * built declarations. See fastify.ts for how they are checked.
 */
import {
  InvalidOptionError, KindeApiError, KindeMeteringError, KindeNetworkError, Metering, MemoryStore, TokenError,
  type CustomerRef, type DroppedRecord, type Take, type TakenEntry, type UsageStore
} from 'kinde-metering'
import { EMULATOR_USER_AUDIENCE, startKindeEmulator, type KindeEmulator } from 'kinde-metering/testing'

const isExactly = <T>(value: T): T => value

// The core with a custom host: record() is synchronous and reports refusal as false.
const metering = new Metering({ domain: 'acme.kinde.com', accessToken: 'token', store: new MemoryStore() })
isExactly<boolean>(metering.record({ orgCode: 'org_1' }, 'searches', 1))
isExactly<boolean>(metering.record({ agreementId: 'agreement_1' }, 'tokens', 2.5, 'POST /complete'))
// @ts-expect-error the amount is a number
metering.record({ orgCode: 'org_1' }, 'searches', '1')
// @ts-expect-error a customer reference, not a string
metering.record('org_1', 'searches', 1)
// A customer reference names exactly one kind: two at once would bill one of them by guess.
// @ts-expect-error a user and an agreement at once
metering.record({ userId: 'kp_1', agreementId: 'agreement_1' }, 'searches', 1)
// @ts-expect-error an organization and a customer at once
const twoKinds: CustomerRef = { orgCode: 'org_1', customerId: 'customer_1' }
isExactly<boolean>(metering.record({ customerId: 'customer_1' } satisfies CustomerRef, 'searches', 1))
// @ts-expect-error the core needs its options
new Metering()
isExactly<number>(metering.config.flushInterval)
// @ts-expect-error the validated configuration is read-only
metering.config.flushInterval = 1

// A store is an interface users can implement.
const store: UsageStore = new MemoryStore()
isExactly<boolean>(store.shared)
// A store of one's own follows takes by id and key, so it may hand out copies.
class CopyingStore extends MemoryStore {
  override async take (): Promise<Take> { return structuredClone(await super.take()) }
}
const own: UsageStore = new CopyingStore()
isExactly<Promise<Take | undefined>>(own.take())
isExactly<string>(({} as TakenEntry).key)
// @ts-expect-error entries are never handed back: putBack names the take and the keys
own.putBack({ entries: [], oldest: 0 })

// Errors: classes with a stable code, an option name, Kinde's status and body.
function explain (error: unknown): string {
  if (error instanceof InvalidOptionError) return `${error.code} ${error.option}`
  if (error instanceof KindeApiError) return `${error.code} ${error.status} ${JSON.stringify(error.body)}`
  if (error instanceof TokenError) return `${error.code} ${error.status ?? 'no answer'}`
  if (error instanceof KindeNetworkError) return `${error.code} ${String(error.cause)}`
  if (error instanceof KindeMeteringError) return error.code
  return String(error)
}
explain(new InvalidOptionError('flushInterval', 'must be a positive number'))
isExactly<Error>(new KindeApiError('meter usage', 400, { errors: [] }))
// @ts-expect-error codes are read-only
new TokenError('denied', 401).code = 'OTHER'

// What onDrop receives can be replayed.
const replay = (record: DroppedRecord): [CustomerRef, string, string] => [record.customer, record.feature, record.value]
replay({ customer: { customerId: 'customer_1' }, feature: 'searches', value: '3', timestamp: new Date().toISOString() })

// The emulator of kinde-metering/testing.
const kinde: KindeEmulator = await startKindeEmulator({
  agreements: [{ id: 'agreement_1', customerId: 'customer_1', features: ['searches'] }],
  organizations: [{ code: 'org_1', customerId: 'customer_1' }]
})
isExactly<string>(kinde.usage('agreement_1', 'searches'))
isExactly<string>(kinde.mintAccessToken({ sub: 'kp_1', org_code: 'org_1', aud: EMULATOR_USER_AUDIENCE }))
kinde.fault({ kind: 'status', status: 429, rateLimitReset: 1 })
// @ts-expect-error faults are 'status', 'reset' or 'delay'
kinde.fault({ kind: 'timeout' })
// @ts-expect-error a user token needs its subject
kinde.mintAccessToken({ org_code: 'org_1' })
await kinde.close()
