/**
 * `GET /api/v1/user`: a user by id, with `billing.customer_id` when `expand=billing`.
 * @module
 */
import type { Directory } from '../directory.js'
import { kindeError } from '../reply.js'
import type { Route } from '../route.js'
import { lookUpRoute } from './look-up.js'

/**
 * The user look-up route.
 * @param createdOn - ISO date-time every user reports as `created_on`.
 */
export function userRoute(directory: Directory, createdOn: string): Route {
  return lookUpRoute({
    endpoint: 'user',
    scope: 'read:users',
    param: 'id',
    find: (id) => directory.user(id),
    // Kinde does not document the answer for an unknown user; 400 is the error it declares.
    unknown: (id) => kindeError(400, 'USER_NOT_FOUND', `No user with id ${id}`),
    body: (user, billing) => ({
      id: user.id,
      is_suspended: false,
      total_sign_ins: 0,
      failed_sign_ins: 0,
      last_signed_in: null,
      created_on: createdOn,
      ...(billing && user.customerId !== undefined ? { billing: { customer_id: user.customerId } } : {}),
    }),
  })
}
