// lib/: the entry points: the Fastify plugin, the Express middleware, the Redis store, the emulator.
/**
 * kinde-metering: turns API traffic into billed usage in Kinde.
 *
 * The default export is the Fastify plugin; the framework-free core ({@link Metering}) is
 * exported for other hosts, and {@link checkKindeSetup} runs the checks of
 * `npx kinde-metering doctor` in code.
 */
import { kindeMetering } from './fastify.js'

export { kindeMetering }
export type { KindeMeteringOptions, RouteMeter } from './fastify.js'
export { Metering, MAX_REFERENCE_LENGTH } from './core/metering.js'
export type { CloseOutcome } from './core/metering.js'
export type { MeteringOptions, AmbiguousPolicy, AccessTokenSource } from './core/config/options.js'
export type { CustomerRef, DropReason, DroppedRecord, OnDrop, Logger, UsageEntry } from './core/usage/types.js'
export { RefKind } from './core/usage/types.js'
export type { MeteringStats, FlushOutcome, Tally, JournalStats, DeadLetterStats } from './core/report/stats.js'
export type { JournalOptions } from './core/config/journal-options.js'
export type { DeadLetterOptions } from './core/config/dead-letter-options.js'
export type { UsageStore, StorePending, StoreContext, Take, TakenEntry, TakeLedger } from './core/store/usage-store.js'
export { MemoryStore } from './core/store/usage-store.js'
export type { UsageBatch } from './core/usage/aggregator.js'
export type { BuiltInValue, MeterSpec } from './adapters/route-meter.js'
export { KindeMeteringError, InvalidOptionError, KindeApiError, TokenError, KindeNetworkError } from './core/report/errors.js'
export { formatMicros, parseMicros, toMicros, addMicros, MICROS_PER_UNIT } from './core/usage/decimal.js'
export type { Micros } from './core/usage/decimal.js'
export { checkKindeSetup } from './doctor/check-setup.js'
export type { SetupCheckOptions } from './doctor/options.js'
export type { SetupReport, SetupCheck, CheckStatus, CheckName } from './doctor/report.js'
export type { SetupCheckOption } from './doctor/startup.js'

export default kindeMetering
