/**
 * The HTTP server: the path every request takes through the emulator, and its shutdown.
 *
 * A request is counted, its body read, noted by its route, then rate-limited, hit by a fault or
 * authorized, and answered; shutdown waits for every request in flight.
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { faultReply, type FaultRules } from './faults.js'
import type { M2MTokens } from './m2m-tokens.js'
import type { TokenBucket } from './rate-limit.js'
import { notFound, throttled, type Reply } from './reply.js'
import type { Endpoint, Exchange, Route, RouteTable } from './route.js'
import type { FaultSpec, InjectedFault } from './types.js'

/**
 * Starts an HTTP server on 127.0.0.1.
 * @param port - the port, 0 for an ephemeral one.
 * @returns the listening server and its base URL; rejects (e.g. `EADDRINUSE`) when it cannot listen.
 */
export async function listen(port: number): Promise<{ server: Server; url: string }> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  const address = server.address() as AddressInfo
  return { server, url: `http://127.0.0.1:${address.port}` }
}

/** What the pipeline consults and where it reports. */
export interface PipelineParts {
  routes: RouteTable
  faults: FaultRules
  /** Rate limiter on `/api/*`; absent = unlimited. */
  limiter: TokenBucket | undefined
  tokens: M2MTokens
  /** Requests received per endpoint, counted as they arrive. */
  calls: Record<Endpoint, number>
  /** Faults injected, appended as they strike. */
  injected: InjectedFault[]
}

const UNKNOWN_ROUTE: Route = { endpoint: 'other', handle: () => notFound() }

/** Serves a server's requests until closed. */
export class RequestPipeline {
  readonly #server: Server
  readonly #base: string
  readonly #parts: PipelineParts
  /** Aborted by close() so pending delays end at once. */
  readonly #closing = new AbortController()
  readonly #inflight = new Set<Promise<void>>()

  /** @param base - the server's URL, against which request paths are read. */
  constructor(server: Server, base: string, parts: PipelineParts) {
    this.#server = server
    this.#base = base
    this.#parts = parts
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#track(this.#serve(req, res)))
  }

  /** Stops listening, destroys open connections, cuts delays short, and waits for every request to settle. */
  async close(): Promise<void> {
    this.#closing.abort()
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    await closed
    await Promise.allSettled(this.#inflight)
  }

  /** Remembers a request being served, so close() can wait for it to settle. */
  #track(job: Promise<void>): void {
    this.#inflight.add(job)
    void job.finally(() => this.#inflight.delete(job))
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url as string, this.#base)
    const route = this.#parts.routes.get(`${req.method} ${url.pathname}`) ?? UNKNOWN_ROUTE
    this.#parts.calls[route.endpoint] += 1
    const body = await readBody(req)
    // A client that leaves mid-body never sent a request Kinde would act on.
    if (body === undefined) return
    const exchange: Exchange = { req, res, url, body, applied: false }
    route.receive?.(exchange)
    const limited = url.pathname.startsWith('/api/') ? this.#throttle() : undefined
    if (limited) return send(exchange, limited)
    const fault = this.#parts.faults.take(route.endpoint)
    if (fault) return this.#injectFault(exchange, route, fault)
    send(exchange, this.#answer(route, exchange))
  }

  #throttle(): Reply | undefined {
    const waitSeconds = this.#parts.limiter?.take()
    return waitSeconds === undefined ? undefined : throttled(waitSeconds)
  }

  async #injectFault(exchange: Exchange, route: Route, fault: FaultSpec): Promise<void> {
    const entry: InjectedFault = { endpoint: route.endpoint, kind: fault.kind, applied: false }
    if (fault.kind === 'status') entry.status = fault.status ?? 500
    this.#parts.injected.push(entry)
    const early = fault.apply === true ? this.#answer(route, exchange) : undefined
    if (fault.kind === 'delay') {
      await this.#pause(fault.delayMs ?? 0, exchange.req.socket)
      if (!exchange.req.socket.destroyed) send(exchange, early ?? this.#answer(route, exchange))
    } else if (fault.kind === 'reset') {
      exchange.req.socket.destroy()
    } else {
      send(exchange, faultReply(fault))
    }
    entry.applied = exchange.applied
  }

  /** Waits `ms`, or less if the client disconnects or the emulator closes. */
  #pause(ms: number, socket: Socket): Promise<void> {
    const closing = this.#closing.signal
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer)
        socket.off('close', finish)
        closing.removeEventListener('abort', finish)
        resolve()
      }
      const timer = setTimeout(finish, ms)
      socket.once('close', finish)
      closing.addEventListener('abort', finish, { once: true })
    })
  }

  /** The route's answer, unless the bearer check refuses first. */
  #answer(route: Route, exchange: Exchange): Reply {
    const denied = route.scope === undefined ? undefined : this.#parts.tokens.authorize(exchange.req.headers.authorization, route.scope)
    return denied ?? route.handle(exchange)
  }
}

/** Reads a request body; undefined when the client disconnects before sending all of it. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = []
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer)
  } catch {
    return undefined
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Answers with `reply` as JSON, noting the status on the meter usage record if there is one. */
function send(exchange: Exchange, reply: Reply): void {
  if (exchange.record) exchange.record.status = reply.status
  const json = JSON.stringify(reply.body)
  exchange.res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
    ...reply.headers,
  })
  exchange.res.end(json)
}
