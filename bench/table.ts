/** Markdown formatting of benchmark figures. */
import type { Spread } from './stats.js'

/** A number with thousands separators and at most `digits` decimals. */
export function num (value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** `median (min–max)`, or the median alone when every round agreed or there was one round. */
export function range (spread: Spread, digits = 0): string {
  const median = num(spread.median, digits)
  const min = num(spread.min, digits)
  const max = num(spread.max, digits)
  return min === max ? median : `${median} (${min}–${max})`
}

/** A markdown table. */
export function table (header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

/** A table of arbitrary rows (the fleet and journal benchmarks'): one column per field. */
export function genericTable (rows: Array<Record<string, unknown>>): string {
  const columns = [...new Set(rows.flatMap(row => Object.keys(row)))]
  const cell = (value: unknown): string => {
    if (typeof value === 'number') return Number.isInteger(value) ? num(value) : num(value, 2)
    if (typeof value === 'string') return value
    return value === undefined ? '' : JSON.stringify(value)
  }
  return table(columns, rows.map(row => columns.map(column => cell(row[column]))))
}
