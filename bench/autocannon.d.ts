/** The part of autocannon's programmatic API the load generator uses (autocannon ships no types). */
declare module 'autocannon' {
  export interface Request {
    method?: string
    path?: string
    headers?: Record<string, string>
    setupRequest?: (request: Request, context: unknown) => Request
  }
  export interface Histogram {
    average: number
    mean: number
    p50: number
    p99: number
    max: number
    total: number
  }
  /** One connection. Its request buffer is asked for before each request is written. */
  export interface Client {
    getRequestBuffer: () => Buffer
  }
  export interface Options {
    url: string
    connections?: number
    duration?: number
    pipelining?: number
    requests?: Request[]
    /** Called with each connection's client before it connects. */
    setupClient?: (client: Client) => void
  }
  export interface Result {
    requests: Histogram
    latency: Histogram
    duration: number
    errors: number
    timeouts: number
    non2xx: number
  }
  function autocannon (options: Options): Promise<Result>
  export default autocannon
}
