/**
 * Prints the mutation score per file from Stryker's JSON report (what `npm run mutation` writes to
 * reports/mutation/mutation.json), with the same rule as Stryker's own: killed + timed out over
 * the valid mutants, no-coverage counted as survived; mutants that do not compile or were
 * ignored (static, or disabled with a reason) are not valid.
 *
 *   node scripts/mutation-score.mjs [report.json] [--survivors] [--under lib/core/usage/]
 *
 * `--survivors` also lists each surviving and uncovered mutant (line, mutator, replacement),
 * `--under` keeps the files whose path starts with that prefix.
 */
import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
const flag = name => {
  const at = args.indexOf(name)
  if (at === -1) return undefined
  const [, value] = args.splice(at, 2)
  return value ?? ''
}
const under = flag('--under') ?? ''
const survivors = flag('--survivors') !== undefined
const reportFile = args[0] ?? 'reports/mutation/mutation.json'

const report = JSON.parse(readFileSync(reportFile, 'utf8'))
const DETECTED = new Set(['Killed', 'Timeout'])
const UNDETECTED = new Set(['Survived', 'NoCoverage'])

/** Score of a set of counts, as a percentage with one decimal, or n/a when nothing is valid. */
const score = ({ detected, undetected }) => detected + undetected === 0 ? 'n/a' : `${(100 * detected / (detected + undetected)).toFixed(1)}%`

const rows = []
const total = { detected: 0, undetected: 0, ignored: 0 }
for (const [file, { mutants }] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
  if (!file.startsWith(under)) continue
  const counts = { detected: 0, undetected: 0, ignored: 0, missed: [] }
  for (const mutant of mutants) {
    if (DETECTED.has(mutant.status)) counts.detected++
    else if (UNDETECTED.has(mutant.status)) {
      counts.undetected++
      counts.missed.push(mutant)
    } else if (mutant.status === 'Ignored') counts.ignored++
  }
  for (const key of ['detected', 'undetected', 'ignored']) total[key] += counts[key]
  rows.push({ file, ...counts })
}

const width = Math.max(4, ...rows.map(row => row.file.length))
console.log(`${'file'.padEnd(width)}  score  detected  missed  ignored`)
for (const row of rows) {
  console.log(`${row.file.padEnd(width)}  ${score(row).padStart(6)}  ${String(row.detected).padStart(8)}  ${String(row.undetected).padStart(6)}  ${String(row.ignored).padStart(7)}`)
}
console.log(`${'total'.padEnd(width)}  ${score(total).padStart(6)}  ${String(total.detected).padStart(8)}  ${String(total.undetected).padStart(6)}  ${String(total.ignored).padStart(7)}`)

if (survivors) {
  for (const row of rows) {
    for (const mutant of row.missed) {
      const { line, column } = mutant.location.start
      console.log(`${row.file}:${line}:${column} ${mutant.status} ${mutant.mutatorName}: ${JSON.stringify(mutant.replacement ?? '')}`)
    }
  }
}
