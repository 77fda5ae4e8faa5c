// lib/adapters/: per-request rules both adapters share: which responses count, built-in meters, who pays.
/**
 * Body bytes of a response as they leave on its socket: after any compression, whoever produced
 * the body. Both adapters use it over real connections.
 */
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Readable } from 'node:stream'

/**
 * Body bytes of one response, read from its connection's byte counter: nothing is patched or
 * buffered. The counter is read when metering of the response starts (Express: the route's meter
 * middleware; Fastify: the route's onSend hook) or when a queued, pipelined response gets the
 * connection, and at `prefinish`, when the whole response has been handed to the socket and before
 * the next pipelined response may write.
 */
export class BodyBytes {
  #socket: Socket | undefined
  #start = 0
  #end = 0
  /** Chunked-encoding framing around the chunks of streams piped into the response. */
  #framing = 0

  constructor (res: ServerResponse) {
    if (res.socket !== null) this.#begin(res.socket)
    else res.once('socket', socket => { this.#begin(socket) })
    res.once('prefinish', () => { this.#end = this.#socket!.bytesWritten })
    res.on('pipe', (source: Readable) => {
      source.on('data', (chunk: Buffer | string) => {
        const length = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length
        // Each non-empty write of a chunked body is framed as `<hex length>\r\n…\r\n`.
        if (length > 0) this.#framing += length.toString(16).length + 4
      })
    })
  }

  #begin (socket: Socket): void {
    this.#socket = socket
    this.#start = socket.bytesWritten
  }

  /**
   * For a response with a body (HEAD, 204 and 304 have none). Exact when the response declares
   * `Content-Length`, is not chunked, or was chunked only by piped streams. Each direct
   * `res.write()` of a chunked body adds its framing: the chunk size in hex plus 4 bytes (see README).
   */
  read (res: ServerResponse): number {
    const length = res.getHeader('content-length')
    if (length !== undefined) return Number(length)
    const { _header: header, chunkedEncoding } = res as unknown as { _header: string, chunkedEncoding: boolean }
    const body = this.#end - this.#start - Buffer.byteLength(header, 'latin1')
    // A chunked body ends with `0\r\n\r\n`.
    return chunkedEncoding ? body - 5 - this.#framing : body
  }
}

