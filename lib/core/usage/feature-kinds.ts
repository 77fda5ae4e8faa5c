// lib/core/usage/: usage in memory: exact decimals, sums and levels per pair, the shapes they travel in.
/**
 * Which kind each feature is metered as in this process: summed (`record()`, Kinde's `delta`)
 * or a level (`set()`, Kinde's `absolute`). The first use of a feature fixes its kind; the
 * other kind is then refused, so Kinde never receives both for one meter: a delta after an
 * absolute value would add to a level, an absolute value after deltas would erase them.
 * Decided per feature rather than per (customer, feature) pair because a Kinde meter is one or
 * the other for every customer, and because a map per feature stays small where one per pair
 * would grow with the customers.
 */

/** Features whose kind is remembered: codes come from the app, not from requests, so this is never reached in practice. */
const MAX_FEATURES = 10_000

/** The kind fixed for each feature used so far. */
export class FeatureKinds {
  /** Feature → true when absolute. */
  readonly #absolute = new Map<string, boolean>()
  /**
   * The feature last claimed as a delta: `record()` runs on every request, mostly with the
   * same few route feature strings, and comparing one costs a fraction of a map look-up.
   */
  #lastDelta: string | undefined

  /**
   * Claims `feature` for one kind; false when it is already metered as the other kind. Past
   * {@link MAX_FEATURES} features, new ones are accepted without being remembered.
   */
  claim (feature: string, absolute: boolean): boolean {
    // Stryker disable next-line ConditionalExpression: a cache of the map below, which answers the same
    if (!absolute && feature === this.#lastDelta) return true
    const known = this.#absolute.get(feature)
    if (known === undefined) {
      if (this.#absolute.size < MAX_FEATURES) this.#absolute.set(feature, absolute)
    } else if (known !== absolute) {
      return false
    }
    // Stryker disable next-line ConditionalExpression: a cache of the map above, which answers the same
    if (!absolute) this.#lastDelta = feature
    return true
  }
}
