// lib/: the entry points: the Fastify plugin, the Express middleware, the Redis store, the emulator.
/**
 * Test helpers for kinde-metering users: `kinde-metering/testing`.
 * @module
 */
export { startKindeEmulator, EMULATOR_USER_AUDIENCE } from './testing/emulator/index.js'
export type {
  EmulatorAgreement,
  EmulatorOptions,
  EmulatorOrganization,
  EmulatorUser,
  FaultEndpoint,
  FaultSpec,
  InjectedFault,
  KindeEmulator,
  ReceivedRecord,
} from './testing/emulator/index.js'
