/** The customers and features the benchmark bills, shared by the load generator, servers and emulator. */

/** Feature codes every emulated agreement includes; the metered route meters both. */
export const FEATURES = ['searches', 'cpu_ms'] as const

/** Feature code of the metered routes' second meter, `value: 'responseBytes'`; every emulated agreement includes it. */
export const BYTES_FEATURE = 'egress_bytes'

/** Header naming the customer (an agreement id) of a request. */
export const CUSTOMER_HEADER = 'x-customer'

/** Agreement id of customer `i`: what the load generator sends and the emulator knows. */
export function agreementId (i: number): string {
  return `agr_${i}`
}
