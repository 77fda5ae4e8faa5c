// `node --import` this file to make `import ... from 'express'` load Express 4 (`express4`).
import { register } from 'node:module'

register('./express4-hooks.mjs', import.meta.url)
