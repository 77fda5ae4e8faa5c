/**
 * A Kinde stand-in on loopback for what the emulator does not vary: it answers as a script says
 * and keeps every request it was sent, headers and body, as Kinde would have received them.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { Metering, type MeteringOptions } from '../../../lib/index.js'
import { memoryLogger } from '../../fixtures.js'

/** A request as the stand-in received it. */
export interface Received { method: string, url: string, headers: IncomingHttpHeaders, body: string }

/** What the stand-in answers. */
export interface Answer { status: number, headers?: Record<string, string>, body?: string }

export const json = { 'content-type': 'application/json' }
/** A token answer with a lifetime of an hour. */
export const tokenAnswer: Answer = { status: 200, headers: json, body: JSON.stringify({ access_token: 'stand-in-token', token_type: 'Bearer', expires_in: 3600 }) }
/** Kinde's answer to an applied meter usage record. */
export const accepted: Answer = { status: 200, headers: json, body: '{"message":"Success","code":"OK"}' }

/** Starts a stand-in answering `script` (token requests get {@link tokenAnswer} unless it says otherwise); closed at teardown. */
export async function standIn (t: Test, script: (request: Received) => Answer | undefined): Promise<{ url: string, received: Received[] }> {
  const received: Received[] = []
  const server = createServer((request, response) => {
    let body = ''
    request.setEncoding('utf8').on('data', chunk => { body += chunk }).on('end', () => {
      const got = { method: request.method!, url: request.url!, headers: request.headers, body }
      received.push(got)
      const answer = script(got) ?? (got.url === '/oauth2/token' ? tokenAnswer : accepted)
      response.writeHead(answer.status, answer.headers).end(answer.body ?? '')
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received }
}

/** A bare core on the stand-in: never flushing on its own, quick retries, a short close; closed at teardown. */
export function coreOnStandIn (t: Test, url: string, extra: Partial<MeteringOptions> = {}): Metering {
  const core = new Metering({
    domain: url, clientId: 'stand-in-id', clientSecret: 'stand-in-secret', flushInterval: 3_600_000,
    retry: { baseDelay: 1, maxDelay: 5 }, shutdownTimeout: 20, logger: memoryLogger().logger, ...extra
  })
  t.teardown(() => core.close())
  return core
}
