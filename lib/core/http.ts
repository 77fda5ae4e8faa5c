/**
 * The one HTTP connection pool to Kinde: keep-alive, timeouts, and the one fact billing needs
 * that a plain `fetch` hides: whether a failed request had been written to the socket (then Kinde
 * may have applied it) or not (then it certainly did not).
 */
import { Pool } from 'undici'
import type { Dispatcher } from 'undici'

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
  /** The underlying error's code (`ECONNREFUSED`, `UND_ERR_SOCKET`, `UND_ERR_HEADERS_TIMEOUT`, …). */
  readonly errorCode: string | undefined

  constructor (cause: Error & { code?: string }, written: boolean) {
    super(cause.message, { cause })
    this.written = written
    this.errorCode = cause.code
  }
}

/** Sends requests to one Kinde origin over a keep-alive pool. */
export class KindeHttp {
  readonly #pool: Pool

  constructor (origin: string, options: { connections: number, timeout: number }) {
    this.#pool = new Pool(origin, {
      connections: options.connections,
      connect: { timeout: options.timeout },
      headersTimeout: options.timeout,
      bodyTimeout: options.timeout
    })
  }

  /** Sends a request; resolves with any HTTP answer, rejects with an {@link HttpFailure}. */
  request (method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      let written = false
      let status = 0
      const responseHeaders: Record<string, string> = {}
      const chunks: Buffer[] = []
      const handler: Dispatcher.DispatchHandler = {
        onConnect () {},
        onRequestSent () { written = true },
        onHeaders (statusCode, rawHeaders) {
          status = statusCode
          for (let i = 0; i < rawHeaders.length; i += 2) {
            responseHeaders[rawHeaders[i].toString('latin1').toLowerCase()] = rawHeaders[i + 1].toString('latin1')
          }
          return true
        },
        onData (chunk) {
          chunks.push(chunk)
          return true
        },
        onComplete () {
          resolve({ status, headers: responseHeaders, body: parseBody(Buffer.concat(chunks).toString('utf8'), responseHeaders['content-type']) })
        },
        onError (error) {
          reject(new HttpFailure(error, written))
        }
      } as Dispatcher.DispatchHandler & { onRequestSent: () => void }
      this.#pool.dispatch({ method, path, headers, body }, handler)
    })
  }

  /** Closes the pool, aborting whatever is still in flight. */
  async close (): Promise<void> {
    await this.#pool.destroy()
  }
}

function parseBody (text: string, contentType: string | undefined): unknown {
  if (text === '' || contentType?.includes('json') !== true) return text
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
