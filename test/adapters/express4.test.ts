// The Express middleware's tests (test/adapters/express.test.ts), on Express 4: the peer range includes it.
import t from 'tap'
import { useExpress4 } from '../helpers/express.js'

useExpress4()
t.match(import.meta.resolve('express'), /\/node_modules\/express4\//, 'express is Express 4 here')
await import('./express.test.js')
