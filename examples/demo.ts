/**
 * kinde-metering demo: `npm run demo`.
 *
 * Starts a metered Fastify API on 127.0.0.1, sends it real HTTP traffic from several customers,
 * prints progress and every flush, then closes the app (its final flush) and reconciles the units
 * the API served against the units Kinde recorded, per (agreement, feature). Each customer's
 * seats change during the run (`PUT /seats`, metered with `app.metering.set()`: an absolute
 * meter); there Kinde must hold the last value set. Exit code 0 when all match, 1 otherwise.
 *
 * Environment:
 *   DEMO_SECONDS      seconds of traffic; default 10.
 *   DEMO_AMBIGUOUS=1  (emulator only) also make Kinde apply one send but answer 500: the plugin
 *                     retries it (`ambiguous: 'retry'`, at-least-once), Kinde counts it twice,
 *                     and the reconciliation reports the MISMATCH (exit 1).
 *
 * By default it runs against the Kinde emulator of `kinde-metering/testing`, started in-process,
 * with five customers: three billed by `agreementId`, one by `userId` and one by `orgCode` (both
 * resolved to their agreement at flush time), and a few injected faults (a 429 with
 * RateLimit-Reset, two 503s) to show retries.
 *
 * Against real Kinde, set all three of
 *   KINDE_DOMAIN                    e.g. acme.kinde.com (not a custom domain)
 *   KINDE_MANAGEMENT_CLIENT_ID      an M2M application authorized for the Management API
 *   KINDE_MANAGEMENT_CLIENT_SECRET  with the scope create:meter_usage
 * and
 *   DEMO_AGREEMENTS   comma-separated customer agreement ids, one demo customer each (required),
 *                     e.g. DEMO_AGREEMENTS=agreement_0195…,agreement_0196…
 *   DEMO_FEATURES     the three metered billing feature codes of those agreements' plan, in the
 *                     order counter, bytes, tokens; default searches,egress_bytes,llm_tokens.
 *                     A fourth code, when given, is the plan's seats feature (an absolute meter).
 * This records real usage: use a test business. Kinde has no API to read usage back, so there the
 * reconciliation compares the units served with the units Kinde accepted (answered 200).
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { setTimeout as delay } from 'node:timers/promises'
import {
  kindeMetering, addMicros, formatMicros, toMicros,
  type CustomerRef, type FlushOutcome, type KindeMeteringOptions, type Micros
} from 'kinde-metering'
import { startKindeEmulator, type KindeEmulator } from 'kinde-metering/testing'

/** A customer of the demo API: who it is to Kinde and how hard it calls the API. */
interface DemoCustomer {
  name: string
  /** The API key it sends as `Authorization: Bearer …`; the API maps it to `ref`. */
  apiKey: string
  /** Who pays, as the API tells kinde-metering. */
  ref: CustomerRef
  /** How `ref` reaches the agreement, for the customers table. */
  via: string
  /** The agreement its usage must land on. */
  agreementId: string
  /** Requests per second it sends. */
  rate: number
}

/** Feature codes the routes meter; `level` (seats, set absolutely) is optional against real Kinde. */
interface Features { counter: string, bytes: string, tokens: string, failing: string, level: string | undefined }

/** How the demo runs: against the emulator or real Kinde. */
interface Setup {
  connection: Pick<KindeMeteringOptions, 'domain' | 'clientId' | 'clientSecret'>
  customers: DemoCustomer[]
  features: Features
  kinde: KindeEmulator | undefined
  describe: string
}

const seconds = Number(process.env.DEMO_SECONDS ?? 10)
if (!(seconds > 0)) {
  process.stderr.write(`demo failed: DEMO_SECONDS must be a positive number of seconds, got ${JSON.stringify(process.env.DEMO_SECONDS)}\n`)
  process.exit(1)
}
const runMs = seconds * 1000
const ambiguousFault = process.env.DEMO_AMBIGUOUS === '1'
// Several flushes per run, however short: 2.5 s for the default 10 s, 0.5 s for a 2 s run.
const flushInterval = Math.round(Math.min(2_500, Math.max(500, runMs / 4)))

const out = (line = ''): void => { process.stdout.write(line + '\n') }

// ---------------------------------------------------------------------------------------------
// Set-up: emulator or real Kinde

async function setUp (): Promise<Setup> {
  const env = process.env
  const real = [env.KINDE_DOMAIN, env.KINDE_MANAGEMENT_CLIENT_ID, env.KINDE_MANAGEMENT_CLIENT_SECRET]
  if (real.some(Boolean) && !real.every(Boolean)) {
    throw new Error('set all three of KINDE_DOMAIN, KINDE_MANAGEMENT_CLIENT_ID and KINDE_MANAGEMENT_CLIENT_SECRET, or none to use the emulator')
  }
  if (real.every(Boolean)) return realKinde()
  return emulatedKinde()
}

function realKinde (): Setup {
  const agreements = [...new Set((process.env.DEMO_AGREEMENTS ?? '').split(',').map(id => id.trim()).filter(Boolean))]
  if (agreements.length === 0) {
    throw new Error('against real Kinde, DEMO_AGREEMENTS must list the customer agreement ids to bill, e.g. DEMO_AGREEMENTS=agreement_a,agreement_b')
  }
  const codes = (process.env.DEMO_FEATURES ?? 'searches,egress_bytes,llm_tokens').split(',').map(code => code.trim())
  if (codes.length < 3 || codes.length > 4 || codes.some(code => code === '')) {
    throw new Error('DEMO_FEATURES must list three feature codes, counter,bytes,tokens, and optionally a fourth for seats')
  }
  const rates = [40, 25, 15, 10]
  return {
    // Read from the environment by the plugin itself; the secret never passes through the demo.
    connection: {},
    customers: agreements.map((agreementId, i) => ({
      name: `customer-${i + 1}`,
      apiKey: `key-${i + 1}`,
      ref: { agreementId },
      via: 'agreementId',
      agreementId,
      rate: rates[i % rates.length]
    })),
    features: { counter: codes[0], bytes: codes[1], tokens: codes[2], failing: 'renders', level: codes[3] },
    kinde: undefined,
    describe: `Kinde at ${process.env.KINDE_DOMAIN}`
  }
}

async function emulatedKinde (): Promise<Setup> {
  const features: Features = { counter: 'searches', bytes: 'egress_bytes', tokens: 'llm_tokens', failing: 'renders', level: 'seats' }
  const planFeatures = [features.counter, features.bytes, features.tokens, features.failing, 'seats']
  const agreement = (id: string, customerId: string, expiresOn: string | null = null) =>
    ({ id, customerId, expiresOn, features: planFeatures })
  const kinde = await startKindeEmulator({
    agreements: [
      agreement('agr_acme', 'cus_acme'),
      agreement('agr_globex', 'cus_globex'),
      agreement('agr_initech', 'cus_initech'),
      agreement('agr_hooli', 'cus_hooli'),
      // Listed first and expired: resolution must skip it for the current one.
      agreement('agr_umbrella_2024', 'cus_umbrella', '2024-12-31T00:00:00Z'),
      agreement('agr_umbrella', 'cus_umbrella')
    ],
    users: [{ id: 'kp_hooli', customerId: 'cus_hooli' }],
    organizations: [{ code: 'org_umbrella', customerId: 'cus_umbrella' }]
  })
  return {
    connection: { domain: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret },
    customers: [
      { name: 'acme', apiKey: 'key-acme', ref: { agreementId: 'agr_acme' }, via: 'agreementId', agreementId: 'agr_acme', rate: 40 },
      { name: 'globex', apiKey: 'key-globex', ref: { agreementId: 'agr_globex' }, via: 'agreementId', agreementId: 'agr_globex', rate: 25 },
      { name: 'initech', apiKey: 'key-initech', ref: { agreementId: 'agr_initech' }, via: 'agreementId', agreementId: 'agr_initech', rate: 10 },
      { name: 'hooli', apiKey: 'key-hooli', ref: { userId: 'kp_hooli' }, via: 'userId kp_hooli -> cus_hooli', agreementId: 'agr_hooli', rate: 15 },
      { name: 'umbrella', apiKey: 'key-umbrella', ref: { orgCode: 'org_umbrella' }, via: 'orgCode org_umbrella -> cus_umbrella', agreementId: 'agr_umbrella', rate: 15 }
    ],
    features,
    kinde,
    describe: `the Kinde emulator at ${kinde.url}`
  }
}

// ---------------------------------------------------------------------------------------------
// The metered API

async function startApi (setup: Setup): Promise<{ app: FastifyInstance, origin: string }> {
  const { features } = setup
  const byKey = new Map(setup.customers.map(customer => [customer.apiKey, customer.ref]))
  // No logger: the demo prints its own lines (a real app would pass its own).
  const app = Fastify()
  await app.register(kindeMetering, {
    ...setup.connection,
    // A real API would look the key up in its database, or use the verified JWT (the default).
    customer: (request: FastifyRequest) => byKey.get(request.headers.authorization?.slice('Bearer '.length) ?? ''),
    flushInterval,
    retry: { baseDelay: 100, maxDelay: 1_000 }
  })

  app.get('/search', { config: { meter: features.counter } }, async request => {
    const { q } = request.query as { q?: string }
    return { query: q, results: [`${q} one`, `${q} two`] }
  })

  app.get('/export', { config: { meter: { feature: features.bytes, value: 'responseBytes' } } }, async (request, reply) => {
    const rows = Math.min(500, Number((request.query as { rows?: string }).rows ?? 10))
    const lines = ['id,name,amount']
    for (let i = 1; i <= rows; i++) lines.push(`${i},item ${i},${(i * 7.25).toFixed(2)}`)
    reply.type('text/csv')
    return lines.join('\n') + '\n'
  })

  app.post('/complete', async (request, reply) => {
    const { prompt } = request.body as { prompt: string }
    const promptTokens = prompt.split(/\s+/).length
    const completionTokens = 20 + (prompt.length % 37)
    // Prompt tokens bill at a tenth of completion tokens, hence decimals.
    const billed = Math.round((completionTokens + promptTokens * 0.1) * 10) / 10
    reply.meter(features.tokens, billed)
    return { text: 'lorem ipsum '.repeat(4), usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, billed_tokens: billed } }
  })

  app.get('/report', { config: { meter: features.failing } }, async () => {
    throw new Error('renderer crashed')
  })

  // Seats are a level, not a flow: the handler sets the new count (Kinde's absolute meter).
  const level = features.level
  if (level !== undefined) {
    app.put('/seats', async (request, reply) => {
      const { seats } = request.body as { seats: number }
      const customer = byKey.get(request.headers.authorization?.slice('Bearer '.length) ?? '')
      if (customer === undefined) return await reply.code(401).send({ error: 'unknown API key' })
      app.metering.set(customer, level, seats)
      return { seats }
    })
  }

  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, origin }
}

// ---------------------------------------------------------------------------------------------
// Traffic, and what the API served (counted by the client, from successful responses only)

/** Units served per agreement and feature, summed exactly. */
class Ledger {
  readonly #units = new Map<string, Micros>()
  /** The last seat count each agreement's customer set (and the API acknowledged). */
  readonly seats = new Map<string, number>()
  requests = 0
  ok = 0
  failed = 0
  readonly failedBy = new Map<string, number>()

  add (agreementId: string, feature: string, value: number): void {
    const key = `${agreementId}\n${feature}`
    this.#units.set(key, addMicros(this.#units.get(key) ?? 0, toMicros(value)))
  }

  served (agreementId: string, feature: string): string {
    return formatMicros(this.#units.get(`${agreementId}\n${feature}`) ?? 0)
  }

  total (): string {
    let sum: Micros = 0
    for (const micros of this.#units.values()) sum = addMicros(sum, micros)
    return formatMicros(sum)
  }
}

/** Mulberry32: a seeded PRNG, so every run sends the same sizes and prompts. */
function seeded (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Each customer's round of ten requests: half searches, a fifth each exports and completions, a
 * tenth failing reports; every route comes up within the first five, however short the run.
 */
const ROUND = ['search', 'export', 'complete', 'search', 'report', 'search', 'complete', 'export', 'search', 'search'] as const

const WORDS = ['kinde', 'billing', 'usage', 'fastify', 'meter', 'invoice', 'plan', 'tokens', 'delta', 'agreement']

/** Sends one customer's requests until `until`, paced at its rate, and books what was served. */
async function drive (customer: DemoCustomer, origin: string, until: number,
  features: Features, ledger: Ledger, random: () => number): Promise<void> {
  const headers = { authorization: `Bearer ${customer.apiKey}` }
  const word = (): string => WORDS[Math.floor(random() * WORDS.length)]
  for (let i = 0; Date.now() < until; i++) {
    const route = ROUND[i % ROUND.length]
    ledger.requests++
    try {
      if (route === 'search') {
        const res = await fetch(`${origin}/search?q=${word()}`, { headers })
        await res.arrayBuffer()
        if (book(res.status, ledger, customer, 'GET /search')) ledger.add(customer.agreementId, features.counter, 1)
      } else if (route === 'export') {
        const res = await fetch(`${origin}/export?rows=${1 + Math.floor(random() * 200)}`, { headers })
        const body = Buffer.from(await res.arrayBuffer())
        if (book(res.status, ledger, customer, 'GET /export')) ledger.add(customer.agreementId, features.bytes, body.length)
      } else if (route === 'complete') {
        const prompt = Array.from({ length: 3 + Math.floor(random() * 40) }, word).join(' ')
        const res = await fetch(`${origin}/complete`, {
          method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ prompt })
        })
        const answer = await res.json() as { usage?: { billed_tokens: number } }
        if (book(res.status, ledger, customer, 'POST /complete')) ledger.add(customer.agreementId, features.tokens, answer.usage!.billed_tokens)
      } else {
        const res = await fetch(`${origin}/report`, { headers })
        await res.arrayBuffer()
        if (book(res.status, ledger, customer, 'GET /report')) ledger.add(customer.agreementId, features.failing, 1)
      }
      // Every fourth request, the customer's team changes size.
      if (features.level !== undefined && i % 4 === 0) {
        const seats = 1 + Math.floor(random() * 50)
        ledger.requests++
        const res = await fetch(`${origin}/seats`, {
          method: 'PUT', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ seats })
        })
        await res.arrayBuffer()
        if (book(res.status, ledger, customer, 'PUT /seats')) ledger.seats.set(customer.agreementId, seats)
      }
    } catch {
      ledger.failed++
    }
    await delay(1000 / customer.rate)
  }
}

/** Counts a response; true when it was served (status below 400). */
function book (status: number, ledger: Ledger, customer: DemoCustomer, route: string): boolean {
  if (status < 400) {
    ledger.ok++
    return true
  }
  ledger.failed++
  const key = `${customer.name}\n${route} ${status}`
  ledger.failedBy.set(key, (ledger.failedBy.get(key) ?? 0) + 1)
  return false
}

// ---------------------------------------------------------------------------------------------
// Output

/** Plain-text table: two-space indent, columns padded; `right` marks right-aligned columns. */
function table (headers: string[], rows: string[][], right: boolean[]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map(row => row[i].length)))
  const line = (cells: string[]): string =>
    '  ' + cells.map((cell, i) => right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])).join('  ').trimEnd()
  return [line(headers), line(widths.map(width => '-'.repeat(width))), ...rows.map(line)].join('\n')
}

/** `1234567.25` -> `1,234,567.25`, keeping every digit. */
function grouped (decimal: string): string {
  const [whole, fraction] = decimal.split('.')
  const withCommas = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return fraction === undefined ? withCommas : `${withCommas}.${fraction}`
}

function stamp (startedAt: number): string {
  return `[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(5)}s]`
}

/** The delta features, then the seats feature when there is one. */
function featuresOf ({ counter, bytes, tokens, failing, level }: Features): string[] {
  return level === undefined ? [counter, bytes, tokens, failing] : [counter, bytes, tokens, failing, level]
}

/** What the API served of a feature: the units summed, or for seats the last value set. */
function servedOf (setup: Setup, ledger: Ledger, agreementId: string, feature: string): string {
  return feature === setup.features.level ? String(ledger.seats.get(agreementId) ?? 0) : ledger.served(agreementId, feature)
}

/** Served / recorded per customer (rows) and feature (columns), as of now. */
function usageTable (setup: Setup, ledger: Ledger): string {
  const features = featuresOf(setup.features)
  const rows = setup.customers.map(customer => [
    customer.name,
    ...features.map(feature => {
      const recorded = setup.kinde === undefined ? '-' : grouped(setup.kinde.usage(customer.agreementId, feature))
      return `${grouped(servedOf(setup, ledger, customer.agreementId, feature))} / ${recorded}`
    })
  ])
  return table(['served / recorded', ...features], rows, [false, ...features.map(() => true)])
}

function flushLine (flush: FlushOutcome, count: number, retried: number, faults: string[]): string {
  const parts = [`${flush.sent} record${flush.sent === 1 ? '' : 's'} sent in ${flush.durationMs} ms`]
  parts.push(flush.pending > 0 ? `${flush.pending} left pending for the next flush` : 'nothing left pending')
  if (flush.dropped > 0) parts.push(`${flush.dropped} dropped`)
  if (flush.error !== undefined) parts.push(`error (${flush.error.kind}): ${flush.error.message}`)
  parts.push(`${retried} send${retried === 1 ? '' : 's'} retried so far`)
  const met = faults.length === 0 ? '' : ` (met faults: ${faults.join(', ')})`
  return `flush #${count}${met}: ${parts.join(', ')}`
}

// ---------------------------------------------------------------------------------------------
// The run

async function main (): Promise<number> {
  const setup = await setUp()
  const { app, origin } = await startApi(setup)
  const { kinde, features } = setup

  out(`kinde-metering demo: ${seconds} s of traffic, usage delivered to ${setup.describe}`)
  out(`API on ${origin}; flush every ${flushInterval / 1000} s; retries with backoff (100 ms base)`)
  out()
  out(table(['customer', 'req/s', 'billed by', 'agreement'],
    setup.customers.map(customer => [customer.name, String(customer.rate), customer.via, customer.agreementId]),
    [false, true, false, false]))
  if (kinde !== undefined) out("  (umbrella's customer also holds an expired agreement, agr_umbrella_2024, listed first: resolution skips it)")
  out()
  out(table(['route', 'meters'], [
    ['GET  /search', `config.meter: '${features.counter}' (+1 per request)`],
    ['GET  /export', `config.meter: { feature: '${features.bytes}', value: 'responseBytes' }`],
    ['POST /complete', `reply.meter('${features.tokens}', n), n with decimals`],
    ['GET  /report', `config.meter: '${features.failing}', always answers 500: not counted`],
    ...(features.level === undefined ? [] : [['PUT  /seats', `app.metering.set(customer, '${features.level}', n): absolute, the last value set wins`]])
  ], [false, false]))
  out()
  out('Tables after each flush show, per customer and feature, the units the API served (successful')
  out('responses, counted by the demo client) / the units Kinde has recorded so far; for seats, the')
  out('last value set / the value Kinde holds.')
  out()

  const ledger = new Ledger()
  const startedAt = Date.now()
  const until = startedAt + runMs

  const timers: NodeJS.Timeout[] = []
  if (kinde !== undefined) {
    timers.push(setTimeout(() => {
      kinde.fault({ kind: 'status', status: 429, rateLimitReset: 1 })
      out(`${stamp(startedAt)} fault armed: Kinde answers the next meter usage send 429 with RateLimit-Reset: 1`)
    }, runMs * 0.3))
    timers.push(setTimeout(() => {
      kinde.fault({ kind: 'status', status: 503, times: 2 })
      out(`${stamp(startedAt)} fault armed: Kinde answers the next two meter usage sends 503`)
    }, runMs * 0.6))
    if (ambiguousFault) {
      timers.push(setTimeout(() => {
        kinde.fault({ kind: 'status', status: 500, apply: true })
        out(`${stamp(startedAt)} fault armed: Kinde applies the next meter usage send but answers 500 (ambiguous)`)
      }, runMs * 0.45))
    }
  }

  // Every flush (the plugin's timer, close) goes through metering.flush(): wrapped, it prints each
  // outcome once (callers that arrive during a flush share its outcome).
  const shown = new WeakSet<FlushOutcome>()
  let flushes = 0
  let faultsSeen = 0
  const reportFlush = (outcome: FlushOutcome | null): void => {
    if (outcome === null || shown.has(outcome)) return
    shown.add(outcome)
    flushes++
    const faults = kinde?.injected.slice(faultsSeen).map(fault => String(fault.status ?? fault.kind)) ?? []
    faultsSeen += faults.length
    out(`${stamp(startedAt)} ${flushLine(outcome, flushes, app.metering.stats().retried, faults)}`)
    out(usageTable(setup, ledger))
  }
  const flush = app.metering.flush.bind(app.metering)
  app.metering.flush = () => flush().then(outcome => {
    reportFlush(outcome)
    return outcome
  })

  let lastProgress = startedAt
  const progress = setInterval(() => {
    if (Date.now() - lastProgress < 1000) return
    lastProgress += 1000
    const stats = app.metering.stats()
    out(`${stamp(startedAt)} ${ledger.requests} requests (${ledger.ok} served, ${ledger.failed} failed); ` +
      `pending ${stats.pending.pairs} pairs, ${grouped(stats.pending.units)} units; ` +
      (stats.inFlight > 0 ? `${stats.inFlight} sends in flight; ` : '') +
      `Kinde accepted ${stats.sent.records} records`)
  }, 100)

  await Promise.all(setup.customers.map((customer, i) => drive(customer, origin, until, features, ledger, seeded(42 + i))))
  for (const timer of timers) clearTimeout(timer)

  out()
  out(`traffic done after ${((Date.now() - startedAt) / 1000).toFixed(1)} s: ${ledger.requests} requests, ${ledger.ok} served, ${ledger.failed} failed`)
  const before = app.metering.stats()
  out(`closing: app.close() flushes what is pending (${before.pending.pairs} pairs, ${grouped(before.pending.units)} units)`)
  clearInterval(progress)
  await app.close()
  reportFlush(app.metering.stats().lastFlush)
  const after = app.metering.stats()
  const droppedRecords = Object.values(after.dropped).reduce((sum, tally) => sum + tally.records, 0)
  out(`closed: ${after.sent.records - before.sent.records} more records sent; ${after.pending.pairs} pairs left pending; ${droppedRecords} dropped`)
  out()

  out('delivery')
  const delivery = [
    ['records accepted by Kinde', `${after.sent.records} (${grouped(after.sent.units)} units)`],
    ['flushes', String(flushes)],
    ['sends retried', String(after.retried)],
    ['failures (not applied / ambiguous)', `${after.failures.notApplied} / ${after.failures.ambiguous}`],
    ['M2M tokens fetched', String(after.tokensFetched)],
    ['look-ups (users / orgs / agreements)', `${after.lookups.users} / ${after.lookups.organizations} / ${after.lookups.agreements}`]
  ]
  if (kinde !== undefined) {
    const injected = kinde.injected.map(fault => String(fault.status ?? fault.kind))
    delivery.push(['faults injected by the emulator', injected.length === 0 ? 'none' : injected.join(', ')])
    delivery.push(['meter usage requests received', `${kinde.records.length} (${kinde.records.filter(record => record.applied).length} applied)`])
  }
  out(delivery.map(([what, value]) => `  ${what.padEnd(38)}${value}`).join('\n'))
  const failures = setup.customers.flatMap(customer => [...ledger.failedBy]
    .filter(([key]) => key.startsWith(`${customer.name}\n`))
    .map(([key, count]) => [customer.name, key.slice(customer.name.length + 1), String(count)]))
  if (failures.length > 0) {
    out()
    out('failed responses (not counted)')
    out(table(['customer', 'response', 'count'], failures, [false, false, true]))
  }
  out()

  const ok = kinde === undefined ? reconcileAccepted(setup, ledger, after.sent.units, droppedRecords) : reconcileRecorded(setup, ledger, kinde)
  if (kinde !== undefined) await kinde.close()
  return ok ? 0 : 1
}

/** Emulator: per (agreement, feature), units served (seats: the last value set) against `kinde.usage()`. */
function reconcileRecorded (setup: Setup, ledger: Ledger, kinde: KindeEmulator): boolean {
  const rows: string[][] = []
  let mismatches = 0
  for (const customer of setup.customers) {
    for (const feature of featuresOf(setup.features)) {
      const served = servedOf(setup, ledger, customer.agreementId, feature)
      const recorded = kinde.usage(customer.agreementId, feature)
      const same = served === recorded
      if (!same) mismatches++
      rows.push([customer.agreementId, customer.name, feature, grouped(served), grouped(recorded), same ? 'ok' : 'MISMATCH'])
    }
  }
  out('reconciliation: units served by the API against units Kinde recorded (seats: the last value set against the value Kinde holds)')
  out(table(['agreement', 'customer', 'feature', 'served', 'recorded', 'check'], rows, [false, false, false, true, true, false]))
  out()
  out(mismatches === 0
    ? `reconciliation: OK (served = recorded for ${rows.length} pairs)`
    : `reconciliation: MISMATCH (${mismatches} of ${rows.length} pairs differ)`)
  if (mismatches > 0 && ambiguousFault) {
    out("(as expected with DEMO_AMBIGUOUS=1: ambiguous: 'retry' is at-least-once; ambiguous: 'drop' makes it at-most-once)")
  }
  return mismatches === 0
}

/** Real Kinde has no read-back: units served against units Kinde accepted, in total (seats are levels, shown apart). */
function reconcileAccepted (setup: Setup, ledger: Ledger, acceptedUnits: string, dropped: number): boolean {
  const rows = setup.customers.flatMap(customer => featuresOf(setup.features).map(feature =>
    [customer.agreementId, customer.name, feature, grouped(servedOf(setup, ledger, customer.agreementId, feature))]))
  out('units served by the API (Kinde has no API to read usage back: compare in the Kinde dashboard)')
  out(table(['agreement', 'customer', 'feature', 'served'], rows, [false, false, false, true]))
  out()
  const served = ledger.total()
  const same = served === acceptedUnits && dropped === 0
  out(same
    ? `reconciliation: OK (served = accepted by Kinde: ${grouped(served)} units over ${rows.length} pairs, none dropped)`
    : `reconciliation: MISMATCH (served ${grouped(served)} units, Kinde accepted ${grouped(acceptedUnits)}, ${dropped} records dropped)`)
  return same
}

main().then(code => {
  process.exitCode = code
}, (error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
