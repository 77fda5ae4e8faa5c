/**
 * Which Express the Express tests run on: 5 (`express`), or 4 (the `express4` dev-dependency
 * alias) once {@link useExpress4} ran, as test/adapters/express4.test.ts and test/project/example-express4.test.ts
 * do before loading the tests they repeat. The peer range is `^4.21.0 || ^5.0.0`: both are tested.
 *
 * Express 4 is had by a module resolve hook (./express4-hooks.mjs) that hands `express4` to every
 * later `import ... from 'express'`, so the tests themselves do not change. They stay typed against
 * Express 5's types; what they use of them is common to both majors.
 */
import { register } from 'node:module'

const REGISTER = new URL('./express4-register.mjs', import.meta.url).href

/** From now on, `express` is Express 4 in this process and in the children of {@link expressNodeArgs}. */
export function useExpress4 (): void {
  register('./express4-hooks.mjs', import.meta.url)
  process.env.TEST_EXPRESS_MAJOR = '4'
}

/** Node options giving a child process (an example) the Express this process runs on. */
export function expressNodeArgs (): string[] {
  return process.env.TEST_EXPRESS_MAJOR === '4' ? ['--import', REGISTER] : []
}
