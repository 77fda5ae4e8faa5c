/**
 * The emulated business's users, organizations and billing agreements.
 *
 * Each names a billing customer or none; a customer exists when any of them names it.
 * @module
 */
import type { EmulatorAgreement, EmulatorOrganization, EmulatorUser } from './types.js'

const DEFAULT_PLAN_CODE = 'emulator_plan'

/** An agreement with its defaults filled in. */
export interface StoredAgreement {
  id: string
  customerId: string
  planCode: string
  expiresOn: string | null
  features: string[]
}

/** Users, organizations and agreements; each added one replaces any with the same key in place. */
export class Directory {
  readonly #users = new Map<string, EmulatorUser>()
  readonly #organizations = new Map<string, EmulatorOrganization>()
  readonly #agreements = new Map<string, StoredAgreement>()

  /** Adds or replaces the agreement with `a.id`, filling in the default plan code and expiry. */
  addAgreement(a: EmulatorAgreement): void {
    this.#agreements.set(a.id, {
      id: a.id,
      customerId: a.customerId,
      planCode: a.planCode ?? DEFAULT_PLAN_CODE,
      expiresOn: a.expiresOn ?? null,
      features: [...a.features],
    })
  }

  /** Adds or replaces the user with `u.id`. */
  addUser(u: EmulatorUser): void {
    this.#users.set(u.id, { ...u })
  }

  /** Adds or replaces the organization with `o.code`. */
  addOrganization(o: EmulatorOrganization): void {
    this.#organizations.set(o.code, { ...o })
  }

  /** The user with this id, if known. */
  user(id: string): EmulatorUser | undefined {
    return this.#users.get(id)
  }

  /** The organization with this code, if known. */
  organization(code: string): EmulatorOrganization | undefined {
    return this.#organizations.get(code)
  }

  /** The agreement with this id, if known. */
  agreement(id: string): StoredAgreement | undefined {
    return this.#agreements.get(id)
  }

  /** The customer's agreements, expired ones included, in the order they were first added. */
  agreementsOf(customerId: string): StoredAgreement[] {
    return [...this.#agreements.values()].filter((a) => a.customerId === customerId)
  }

  /** Whether any user, organization or agreement names this billing customer. */
  isCustomer(customerId: string): boolean {
    const holds = (entry: { customerId?: string }): boolean => entry.customerId === customerId
    return [...this.#users.values()].some(holds) ||
      [...this.#organizations.values()].some(holds) ||
      [...this.#agreements.values()].some(holds)
  }
}

/** Whether the agreement's `expires_on` has passed: such an agreement cannot be billed. */
export function isExpired(agreement: StoredAgreement): boolean {
  return agreement.expiresOn !== null && Date.parse(agreement.expiresOn) <= Date.now()
}
