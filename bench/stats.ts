/** Summaries of repeated measurements: median with min and max. */

/** A measurement over rounds: its median and range. */
export interface Spread { median: number, min: number, max: number, samples: number[] }

/** Median, min and max of the samples (the median of an even count is the mean of the middle two). */
export function spread (samples: number[]): Spread {
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1], samples }
}
