/**
 * One Express variant of the measured server (see `Variant`): `GET /` answering
 * `res.json({ hello: 'world' })`. Runs in its own process; the harness reads its CPU time. The
 * servers without kinde-metering load nothing but Express.
 */
import express, { type RequestHandler } from 'express'
import type { MeteringStats } from '../lib/index.js'
import { loadExpress } from './package.js'
import { answer, childConfig, tell } from './proc.js'
import { meteringOptions, serverStats, TWO_METERS, type ServerConfig } from './variants.js'

async function main (): Promise<void> {
  const { variant, kinde } = childConfig<ServerConfig>()
  const app = express()
  const route: RequestHandler[] = []
  let stats: (() => MeteringStats) | undefined
  if (variant === 'express-trivial') {
    app.use((_req, _res, next) => { next() })
  } else if (variant === 'express-finish') {
    const onFinish = (): void => {}
    app.use((_req, res, next) => {
      res.on('finish', onFinish)
      next()
    })
  } else if (variant === 'express-unmetered' || variant === 'express-metered') {
    const { kindeMetering, meter } = await loadExpress()
    const metering = kindeMetering(meteringOptions(kinde))
    app.use(metering)
    stats = () => metering.stats()
    if (variant === 'express-metered') route.push(meter(TWO_METERS))
  }
  app.get('/', ...route, (_req, res) => { res.json({ hello: 'world' }) })
  const server = app.listen(0, '127.0.0.1', () => {
    tell({ type: 'ready', port: (server.address() as { port: number }).port })
  })
  answer('stats', () => serverStats(stats?.()))
}

void main()
