/**
 * The import graph of lib/, read with the TypeScript compiler's own pre-processor, so type-only
 * imports (`import type`, `export type … from`) count as edges like any other: a type-only cycle
 * still ties two modules into one unit a reader has to take in at once.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import ts from 'typescript'

/** Every .ts file under `dir`, as absolute paths. */
export function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter(name => name.endsWith('.ts'))
    .map(name => join(dir, name))
    .sort()
}

/** file → the lib files it imports (relative specifiers only: packages are not part of the graph). */
export function importGraph (root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sourceFiles(root)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
    graph.set(relative(root, file), importedFiles
      .map(({ fileName }) => fileName)
      .filter(name => name.startsWith('.'))
      .map(name => relative(root, resolve(dirname(file), name.replace(/\.js$/, '.ts')))))
  }
  return graph
}

/** Each import cycle once, as the path of files that closes it (first file repeated at the end). */
export function importCycles (graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = []
  const done = new Set<string>()
  const path: string[] = []
  const onPath = new Set<string>()
  const visit = (file: string): void => {
    if (onPath.has(file)) {
      cycles.push([...path.slice(path.indexOf(file)), file])
      return
    }
    if (done.has(file)) return
    onPath.add(file)
    path.push(file)
    for (const next of graph.get(file) ?? []) visit(next)
    path.pop()
    onPath.delete(file)
    done.add(file)
  }
  for (const file of graph.keys()) visit(file)
  return cycles
}
