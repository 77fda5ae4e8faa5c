// Types of scripts/mutation-order.mjs, for the test that imports it.

/**
 * `testFiles` ordered for a mutant of `mutantFile`: the test mirroring it first, then the other
 * tests of that folder, then the rest of test/core, then the others; each group in its given order.
 */
export declare function orderTests (testFiles: readonly string[], mutantFile: string, root: string): string[]
