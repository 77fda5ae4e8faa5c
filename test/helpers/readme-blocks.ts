/**
 * README's TypeScript blocks, as test/project/readme.test.ts checks them: where each is in README, how it
 * is to be checked (the `<!-- readme-check: … -->` comment right before its fence), and the
 * source file it becomes.
 */

/** How a block is checked: compiled as an ES module, as CommonJS, or every line must fail. */
export type BlockMode = 'module' | 'commonjs' | 'errors'

/** One ```ts block of README. */
export interface ReadmeBlock {
  /** README line of the block's first line of code (1-based). */
  line: number
  mode: BlockMode
  /** The code, without the fences. */
  code: string
}

const MODES: Record<string, BlockMode> = { commonjs: 'commonjs', errors: 'errors' }

/** Every ```ts block of `markdown`; an unknown `readme-check` mode throws, naming its line. */
export function readmeBlocks (markdown: string): ReadmeBlock[] {
  const lines = markdown.split('\n')
  const blocks: ReadmeBlock[] = []
  for (let index = 0; index < lines.length; index++) {
    if (!['```ts', '```typescript'].includes(lines[index].trim())) continue
    const marker = /^<!-- readme-check: (\S+) -->$/.exec(lines[index - 1]?.trim() ?? '')
    const mode = marker === null ? 'module' : MODES[marker[1]]
    if (mode === undefined) throw new Error(`README.md:${index}: unknown readme-check mode "${marker?.[1]}"`)
    const end = lines.findIndex((line, at) => at > index && line.trim() === '```')
    if (end === -1) throw new Error(`README.md:${index + 1}: the block is never closed`)
    blocks.push({ line: index + 2, mode, code: lines.slice(index + 1, end).join('\n') })
    index = end
  }
  return blocks
}

/** A source file holding one block. */
export interface BlockFile {
  /**
   * The file name: the one a `// name.ts` first line gives (so that another block can import
   * it, as try.ts imports server.ts), else one made from the block's line.
   */
  name: string
  text: string
  /** README lines that must fail to compile: in a block of mistakes, each but blank and import lines. */
  mustFail: number[]
}

/**
 * The file a block becomes: a module (`export {}` is appended) so that top-level `await` is
 * allowed and blocks share no names. Line n of the file is README line `block.line + n - 1`.
 */
export function sourceFile (block: ReadmeBlock): BlockFile {
  const lines = block.code.split('\n')
  const named = /^\/\/ ([\w-]+\.ts)\s*$/.exec(lines[0])
  const name = named?.[1] ?? `block-${block.line}.${block.mode === 'commonjs' ? 'cts' : 'ts'}`
  const mustFail = block.mode !== 'errors'
    ? []
    : lines.flatMap((code, index) => code.trim() === '' || code.startsWith('import ') ? [] : [block.line + index])
  return { name, text: `${block.code}\nexport {}\n`, mustFail }
}
