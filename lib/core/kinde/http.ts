// lib/core/kinde/: talking to Kinde's Management API: connections, tokens, calls, who pays to which agreement.
/**
 * The one keep-alive connection pool to Kinde, on Node's own `node:http`/`node:https` Agent:
 * timeouts, and the one fact billing needs that a plain `fetch` hides: whether a failed request
 * had been written to the socket (then Kinde may have applied it) or not (then it certainly did
 * not). The request's `finish` event is that fact: Node emits it once the last byte was handed to
 * the operating system.
 *
 * Why not undici (issue 13): undici's package index loads its `lib/web/*` group (fetch, cache
 * storage, cookies, websocket, eventsource) even for a plain `Pool`. In a Fastify server that had
 * loaded the whole index and booted a plugin, `process.nextTick` ran about ten times slower at
 * every call site (8.7% of the server's CPU in `--cpu-prof` against 0.6%; +5 to +9 µs per request
 * on a 30 µs hello-world route), with the routes metering nothing. `nextTick` builds each tick
 * object with an object literal whose first keys are computed (`{ [async_id_symbol]: …,
 * [trigger_async_id_symbol]: …, callback, args }`). In the slow servers, `%DebugPrint` of
 * `nextTick`'s feedback shows the three property definitions after the first one MEGAMORPHIC
 * (five servers out of five; monomorphic in five out of five with only Fastify and a plugin, or
 * with this package on `node:http`), and `perf` shows the time in
 * `Runtime_DefineKeyedOwnPropertyInLiteral`: every tick object is built by a C++ transition
 * search instead of a map check. `nextTick` is optimized once and never deoptimized, so the
 * generic path stays. Neither one `lib/web` module alone nor undici without a plugin does it,
 * so it is no line of undici's: why the whole index tips V8's feedback there was not pinned down
 * (the likeliest reading: more loaded code moves when `nextTick` turns hot against when the
 * literal's intermediate maps are replaced). undici 7 has no `exports` map, so only its index is
 * a supported import. Node's Agent adds only Node's own `http`/`https` modules, needs no
 * dependency, and has no handler API to be deprecated.
 *
 * Delivery throughput (issue 13: one flush of 100,000 pairs to the emulator fell from 19,273 to
 * ~3,500 records/s after the switch). Measured apart, 2026-12-01, client pinned to core 0 and the
 * emulator to core 1, node:http and undici interleaved in one process (load average 9–13 from
 * other engineers' runs): keep-alive holds (4 connections for 4,000 sends), Nagle is not it (Node
 * sets `noDelay` on both the Agent's and the server's sockets; `strace` shows one `writev` per
 * request and one `read` per answer, the same counts as undici's), and the emulator spends the
 * same 80–95 µs per record whichever client calls it. The client does cost more: 115–125 µs of
 * CPU per send on node:http against 79–80 µs on undici (`ClientRequest`, `IncomingMessage` and
 * the Agent's bookkeeping). The rest of the fall is the machine: in the slow run neither side was
 * busy (client 42%, emulator 32% of a core), so each round trip waited for the scheduler, while
 * in the 19,273 run both sides were 83–88% busy. A string body (written with the header block in
 * one write, no Buffer copy) and the request's own `timeout` option (no per-request `'socket'`
 * listener) trim a few µs. Against Kinde itself a send waits a network round trip (at
 * concurrency 4 and 50 ms, 80 records/s), so the client's CPU is not what bounds delivery.
 */
import { Agent as HttpAgent, request as httpRequest, type RequestOptions } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'

/** An HTTP answer, body parsed as JSON when it is JSON. */
export interface HttpAnswer {
  status: number
  headers: Record<string, string>
  body: unknown
}

/** A request that failed without an answer, and whether it had been written first. */
export class HttpFailure extends Error {
  /** True when the request was handed to the socket before the failure: it may have been applied. */
  readonly written: boolean
  /**
   * The underlying error's code: Node's (`ECONNREFUSED`, `ECONNRESET`, …), or `TIMEOUT` when the
   * connection stayed silent for the timeout.
   */
  readonly errorCode: string | undefined

  constructor (cause: Error & { code?: string }, written: boolean) {
    super(cause.message, { cause })
    this.written = written
    this.errorCode = cause.code
  }
}

/** Node's client per scheme: Kinde is `https:`, the emulator `http:`. */
const CLIENTS = {
  'http:': { Agent: HttpAgent, request: httpRequest },
  'https:': { Agent: HttpsAgent, request: httpsRequest }
}

/** Sends requests to one Kinde origin over a keep-alive pool. */
export class KindeHttp {
  readonly #target: Pick<RequestOptions, 'protocol' | 'hostname' | 'port'>
  readonly #agent: HttpAgent
  readonly #send: typeof httpRequest
  readonly #timeout: number

  /**
   * @param origin `https://…` or, for the emulator, `http://…`.
   * @param options `connections`: sockets at most; `timeout`: ms a connection may stay silent
   *   (connecting, awaiting the answer, or between body chunks) before the request fails.
   */
  constructor (origin: string, options: { connections: number, timeout: number }) {
    const url = new URL(origin)
    const client = CLIENTS[url.protocol as keyof typeof CLIENTS]
    // An empty port is the scheme's default to Node; IPv6 hosts come bracketed from URL.
    // Stryker disable next-line Regex: URL puts brackets only around a whole IPv6 host, so dropping either anchor strips the same two
    this.#target = { protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port }
    this.#agent = new client.Agent({
      keepAlive: true,
      maxSockets: options.connections,
      maxFreeSockets: options.connections,
      // An idle connection is closed after 4 s (undici's default), or sooner when the server's
      // Keep-Alive hint says so, so that a send seldom goes out on a connection Kinde is closing
      // (a reset after writing is ambiguous).
      timeout: 4_000
    })
    this.#send = client.request
    this.#timeout = options.timeout
  }

  /** Sends a request; resolves with any HTTP answer, rejects with an {@link HttpFailure}. */
  request (method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const request = this.#send({
        ...this.#target,
        method,
        path,
        // Ending with the whole body, Node declares its Content-Length itself.
        headers,
        agent: this.#agent,
        timeout: this.#timeout
      })
      let written = false
      // A timeout destroys the request, and what then surfaces is a generic reset: keep the reason.
      let timedOut: Error | undefined
      // Settling twice is harmless: a promise keeps its first outcome.
      const fail = (error: Error): void => { reject(new HttpFailure(timedOut ?? error, written)) }
      request.on('finish', () => { written = true })
      request.on('timeout', () => {
        timedOut = Object.assign(new Error(`the connection to Kinde was silent for ${this.#timeout} ms`), { code: 'TIMEOUT' })
        request.destroy(timedOut)
      })
      request.on('error', fail)
      request.on('response', answer => {
        const chunks: Buffer[] = []
        answer.on('data', (chunk: Buffer) => { chunks.push(chunk) })
        answer.on('error', fail)
        answer.on('end', () => {
          const responseHeaders = lowerCaseHeaders(answer.rawHeaders)
          resolve({ status: answer.statusCode!, headers: responseHeaders, body: parseBody(Buffer.concat(chunks).toString('utf8'), responseHeaders['content-type']) })
        })
      })
      // A string body goes out in one write with the header block.
      request.end(body)
    })
  }

  /**
   * Closes the pool's connections: a request still on one fails (as written or not, as it was).
   * A request made later opens a connection of its own, which the pool keeps unreferenced once
   * answered: it never holds the process open.
   */
  async close (): Promise<void> {
    this.#agent.destroy()
  }
}

/** Response headers by lower-case name; of a repeated header, the last. */
function lowerCaseHeaders (raw: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) headers[raw[i].toLowerCase()] = raw[i + 1]
  return headers
}

function parseBody (text: string, contentType: string | undefined): unknown {
  if (contentType?.includes('json') !== true) return text
  try {
    return JSON.parse(text)
  } catch {
    // Also an empty body: what Kinde sent is kept as it came.
    return text
  }
}
