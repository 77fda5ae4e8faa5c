/**
 * Metering what only the handler knows: the tokens of an LLM completion, recorded with
 * `reply.meter(feature, value)` once the model has answered, next to a route meter that counts
 * successful completions.
 *
 *   npm run build && npx tsx examples/llm-tokens.ts
 *   curl -H 'x-api-key: acme-key' -H 'content-type: application/json' \
 *        -d '{"prompt":"write a haiku about invoices","max_tokens":16}' http://127.0.0.1:3000/v1/completions
 *
 * `reply.meter()` counts whatever the response status: tokens a model consumed are billed even
 * when the answer fails afterwards. Route meters (`config.meter`) count only responses below
 * 400 (see the `countStatus` option).
 *
 * Without KINDE_DOMAIN it bills the local Kinde emulator and, when stopped (Ctrl-C), prints what
 * Kinde recorded; with KINDE_DOMAIN and the M2M credentials set it bills your Kinde business.
 */
import Fastify from 'fastify'
import { kindeMetering, type CustomerRef } from 'kinde-metering'
import { exampleKinde, examplePort, runWhenExecuted, type RunningExample } from './runner.js'

/**
 * API keys and the customer agreement each bills. Storing the agreement id when a key is issued
 * saves Kinde look-ups: usage is sent as is.
 */
const agreementsByApiKey = new Map<string, CustomerRef>([
  ['acme-key', { agreementId: 'agreement_acme' }]
])

/** What a model call consumed, as LLM APIs report it. */
interface Usage { inputTokens: number, outputTokens: number }

/**
 * A stand-in for the model: one token per word of the prompt; it writes up to `maxTokens` words
 * and fails (after reading the prompt) when asked to write none.
 */
async function complete (prompt: string, maxTokens: number): Promise<{ text: string, usage: Usage }> {
  const words = prompt.trim().split(/\s+/)
  const usage = { inputTokens: words.length, outputTokens: Math.min(maxTokens, words.length * 2) }
  if (usage.outputTokens === 0) throw Object.assign(new Error('the model produced no output'), { usage })
  const text = Array.from({ length: usage.outputTokens }, (_, i) => words[i % words.length]).join(' ')
  return { text, usage }
}

export async function start (): Promise<RunningExample> {
  const kinde = await exampleKinde({
    agreements: [{ id: 'agreement_acme', customerId: 'customer_acme', features: ['completions', 'input_tokens', 'output_tokens'] }]
  })

  const app = Fastify({ logger: { level: 'warn' } })
  await app.register(kindeMetering, {
    ...kinde.connection,
    customer: request => agreementsByApiKey.get(String(request.headers['x-api-key']))
  })

  app.addHook('onRequest', async (request, reply) => {
    if (!agreementsByApiKey.has(String(request.headers['x-api-key']))) {
      return reply.code(401).send({ error: 'a valid x-api-key header is required' })
    }
  })

  const schema = {
    body: {
      type: 'object',
      required: ['prompt'],
      properties: { prompt: { type: 'string', minLength: 1 }, max_tokens: { type: 'integer', minimum: 0, default: 64 } }
    }
  }

  app.post('/v1/completions', { schema, config: { meter: 'completions' } }, async (request, reply) => {
    const { prompt, max_tokens: maxTokens } = request.body as { prompt: string, max_tokens: number }
    try {
      const { text, usage } = await complete(prompt, maxTokens)
      reply.meter('input_tokens', usage.inputTokens).meter('output_tokens', usage.outputTokens)
      return { text, usage: { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens } }
    } catch (error) {
      // The prompt was read: its tokens are billed though the completion failed (and is not counted).
      const usage = (error as { usage?: Usage }).usage
      if (usage !== undefined) reply.meter('input_tokens', usage.inputTokens)
      return reply.code(502).send({ error: (error as Error).message })
    }
  })

  const url = await app.listen({ host: '127.0.0.1', port: examplePort() })
  return {
    app,
    url,
    kinde,
    try: {
      completion: `curl -H 'x-api-key: acme-key' -H 'content-type: application/json' -d '{"prompt":"write a haiku about invoices","max_tokens":16}' ${url}/v1/completions`
    }
  }
}

runWhenExecuted(import.meta.url, start)
