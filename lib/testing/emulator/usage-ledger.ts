/**
 * The usage Kinde has recorded per (agreement, feature), summed exactly.
 * @module
 */
import { addDecimals, formatDecimal, parseDecimal, type Decimal } from './decimal.js'

/** Usage per (agreement, feature) since the last absolute value. */
export class UsageLedger {
  readonly #totals = new Map<string, Decimal>()

  /**
   * Records one accepted meter usage record.
   * @param meterValue - a plain non-negative decimal, already validated.
   * @param type - `'absolute'` replaces the total; `'delta'` or absent adds to it.
   */
  apply(agreementId: string, feature: string, meterValue: string, type: 'absolute' | 'delta' | undefined): void {
    const key = usageKey(agreementId, feature)
    const value = parseDecimal(meterValue)
    const current = this.#totals.get(key)
    // Kinde leaves the default type undocumented; delta is the only reading under which omitting it is safe.
    const replaces = type === 'absolute' || current === undefined
    this.#totals.set(key, replaces ? value : addDecimals(current, value))
  }

  /** The total for (agreement, feature) without trailing zeros; `'0'` when nothing was recorded. */
  total(agreementId: string, feature: string): string {
    const total = this.#totals.get(usageKey(agreementId, feature))
    return total ? formatDecimal(total) : '0'
  }
}

function usageKey(agreementId: string, feature: string): string {
  return `${agreementId}\u0000${feature}`
}
