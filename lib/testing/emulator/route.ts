/**
 * The contract between the server and the routes: the exchange a route reads and the route table.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Reply } from './reply.js'
import type { FaultEndpoint, ReceivedRecord } from './types.js'

/** What the emulator counts requests by: the endpoints faults can target, the JWKS, and the rest. */
export type Endpoint = FaultEndpoint | 'jwks' | 'other'

/** One request on its way through the emulator, its body read in full. */
export interface Exchange {
  req: IncomingMessage
  res: ServerResponse
  url: URL
  body: string
  /** The meter usage body, when it parsed as a JSON object. */
  input?: Record<string, unknown>
  /** Where the outcome of a meter usage request is noted for the test. */
  record?: ReceivedRecord
  /** Whether the request changed the emulator's usage, whatever the client is answered. */
  applied: boolean
}

/** An emulated endpoint. */
export interface Route {
  endpoint: Endpoint
  /** Scope a bearer token needs; absent = no token needed. */
  scope?: string
  /** Notes the request as received, before the rate limiter or a fault can stop it. */
  receive?(exchange: Exchange): void
  /** Answers an authorized request. */
  handle(exchange: Exchange): Reply
}

/** Routes by `METHOD /path`. */
export type RouteTable = Map<string, Route>
