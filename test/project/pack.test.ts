/**
 * The package as users get it: `npm pack`, then installed from the tarball into a new project
 * holding nothing else but Fastify (no dev dependencies, no repository around it), where a
 * CommonJS and an ES module consumer load every entry point and meter requests against the
 * emulator, and TypeScript consumers type-check under NodeNext (ESM and CJS) and Bundler.
 * `npm run build` must have run (npm test does).
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TSC, run } from '../helpers/processes.js'
import { expectSuccess, packAndInstall, root } from '../helpers/packed.js'

const ENTRIES = ['kinde-metering', 'kinde-metering/express', 'kinde-metering/redis', 'kinde-metering/testing']

/**
 * One consumer's code, the same for both module systems: `load(specifier)` is `require` or
 * `import()`. It prints one JSON line of what it found.
 */
const consumerBody = `
const [root, express, redis, testing] = await Promise.all(${JSON.stringify(ENTRIES)}.map(load))
const out = { exports: {}, errors: {} }
for (const [name, mod] of Object.entries({ root, express, redis, testing })) {
  out.exports[name] = Object.fromEntries(Object.entries(mod).map(([key, value]) => [key, typeof value]))
}
out.defaultIsPlugin = root.default === root.kindeMetering

// The plugin meters real requests and delivers them to the emulator.
const kinde = await testing.startKindeEmulator({ agreements: [{ id: 'agreement_1', customerId: 'customer_1', features: ['searches'] }] })
const connection = { domain: kinde.url, clientId: kinde.clientId, clientSecret: kinde.clientSecret }
const app = Fastify()
await app.register(root.kindeMetering, { ...connection, customer: () => ({ agreementId: 'agreement_1' }) })
app.get('/search', { config: { meter: 'searches' } }, async () => 'ok')
for (let i = 0; i < 3; i++) await app.inject('/search')
out.flush = await app.metering.flush()
out.usage = kinde.usage('agreement_1', 'searches')
await app.close()

// Errors: one class per failure, with a stable code, shared by every entry point.
const invalid = Fastify()
await invalid.register(root.kindeMetering, { ...connection, flushInterval: -1 }).ready().catch(error => {
  out.errors.plugin = { name: error.name, code: error.code, option: error.option, isBase: error instanceof root.KindeMeteringError }
})
try { redis.redisStore({}) } catch (error) {
  out.errors.redis = { name: error.name, code: error.code, option: error.option, isInvalidOption: error instanceof root.InvalidOptionError }
}
const middleware = express.kindeMetering(connection)
out.expressMiddleware = { arity: middleware.length, close: typeof middleware.close, meter: typeof express.meter('searches') }
await middleware.close()
for (const ErrorClass of [root.KindeApiError, root.TokenError, root.KindeNetworkError]) {
  const error = new ErrorClass('a request', 403, {})
  out.errors[error.name] = { code: error.code, isBase: error instanceof root.KindeMeteringError }
}
await kinde.close()

// Only the exported entry points can be reached.
await load('kinde-metering/dist/esm/core/metering.js').catch(error => { out.deepImport = error.code })
console.log(JSON.stringify(out))
`

const cjsConsumer = `const Fastify = require('fastify')
const load = async specifier => require(specifier)
;(async () => {${consumerBody}})()
`
const esmConsumer = `import Fastify from 'fastify'
const load = specifier => import(specifier)
${consumerBody}`

/** A TypeScript consumer; `config.meter: 1` must be refused, proving types are in force. */
const tsConsumer = (importLines: string): string => `${importLines}
const app = Fastify()
void app.register(kindeMetering, { customer: request => ({ orgCode: String(request.headers['x-org']) }), flushInterval: 60_000 })
app.get('/search', { config: { meter: 'searches' } }, async (_request, reply) => reply.meter('tokens', 2).send('ok'))
// @ts-expect-error a meter is a feature code, not a number
app.get('/wrong', { config: { meter: 1 } }, async () => 'ok')
const code: string = new InvalidOptionError('domain', 'is required').code
const middleware = expressMetering({ flushInterval: 1_000 })
const store: typeof redisStore = redisStore
const emulator: Promise<{ url: string }> = startKindeEmulator()
export { code, middleware, store, emulator }
`
const tsImports = (from: (entry: string) => string): string => [
  `import Fastify from 'fastify'`,
  `import kindeMetering, { InvalidOptionError } from '${from('kinde-metering')}'`,
  `import { kindeMetering as expressMetering } from '${from('kinde-metering/express')}'`,
  `import { redisStore } from '${from('kinde-metering/redis')}'`,
  `import { startKindeEmulator } from '${from('kinde-metering/testing')}'`
].join('\n')

const tsconfig = (module: string, moduleResolution: string, include: string): string => JSON.stringify({
  compilerOptions: {
    module,
    moduleResolution,
    target: 'ES2022',
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    // The consumer installs no @types/node; Fastify's types need it.
    typeRoots: [join(root, 'node_modules/@types')],
    types: ['node']
  },
  include: [include]
})

type ConsumerOutput = {
  exports: Record<string, Record<string, string>>
  errors: Record<string, Record<string, unknown>>
  defaultIsPlugin: boolean
  flush: { sent: number }
  usage: string
  expressMiddleware: { arity: number, close: string, meter: string }
  deepImport: string
}

t.test('the packed tarball installs and works from CommonJS, ES modules and TypeScript', async t => {
  t.ok(existsSync(join(root, 'dist/cjs/package.json')), 'dist/ is built (npm test runs `npm run build` first)')
  const { app, files: paths } = await packAndInstall(t, ['fastify@5'])
  t.same(paths.filter(path => !path.startsWith('dist/') && !path.startsWith('examples/')).sort(), ['LICENSE', 'README.md', 'package.json'],
    'only the build, the examples, the README and the licence are published')
  t.same(paths.filter(path => path.startsWith('examples/')).sort(), (await readdir(join(root, 'examples'))).map(file => `examples/${file}`).sort(),
    'every example README links to is in the package')
  const published = /^(LICENSE|README\.md|package\.json|examples\/[\w-]+\.ts|dist\/cjs\/package\.json|dist\/(esm|cjs)\/.+\.(js|d\.ts))$/
  t.same(paths.filter(path => !published.test(path)), [], 'dist/ holds modules, declarations and the CommonJS marker')
  for (const entry of ['index', 'express', 'redis', 'testing']) {
    for (const system of ['esm', 'cjs']) {
      t.ok(paths.includes(`dist/${system}/${entry}.js`) && paths.includes(`dist/${system}/${entry}.d.ts`), `${system} ${entry} and its types`)
    }
  }

  const manifest = JSON.parse(await readFile(join(app, 'node_modules/kinde-metering/package.json'), 'utf8')) as { version: string }
  t.equal(manifest.version, JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version)

  await writeFile(join(app, 'consumer.cjs'), cjsConsumer)
  await writeFile(join(app, 'consumer.mjs'), esmConsumer)
  await writeFile(join(app, 'consumer-esm.mts'), tsConsumer(tsImports(entry => entry)))
  await writeFile(join(app, 'consumer-cjs.cts'), tsConsumer(tsImports(entry => entry)))
  await writeFile(join(app, 'consumer-bundler.ts'), tsConsumer(tsImports(entry => entry)))
  await writeFile(join(app, 'tsconfig.node.json'), tsconfig('NodeNext', 'NodeNext', '*.?ts'))
  await writeFile(join(app, 'tsconfig.bundler.json'), tsconfig('Preserve', 'Bundler', 'consumer-bundler.ts'))

  const [cjs, esm, typesNode, typesBundler] = await Promise.all([
    run(process.execPath, ['consumer.cjs'], { cwd: app }),
    run(process.execPath, ['consumer.mjs'], { cwd: app }),
    run(process.execPath, [TSC, '-p', 'tsconfig.node.json'], { cwd: app }),
    run(process.execPath, [TSC, '-p', 'tsconfig.bundler.json'], { cwd: app })
  ])

  for (const [system, result] of [['CommonJS', cjs], ['ES module', esm]] as const) {
    t.test(`${system} consumer`, async t => {
      expectSuccess(t, `the ${system} consumer`, result)
      const out = JSON.parse(result.stdout) as ConsumerOutput
      t.match(out.exports.root, {
        kindeMetering: 'function',
        default: 'function',
        Metering: 'function',
        checkKindeSetup: 'function',
        KindeMeteringError: 'function',
        InvalidOptionError: 'function',
        KindeApiError: 'function',
        TokenError: 'function',
        KindeNetworkError: 'function'
      })
      t.ok(out.defaultIsPlugin, 'the default export is the plugin')
      t.match(out.exports.express, { kindeMetering: 'function', meter: 'function' })
      t.match(out.exports.redis, { redisStore: 'function', RedisStore: 'function' })
      t.match(out.exports.testing, { startKindeEmulator: 'function', EMULATOR_USER_AUDIENCE: 'string' })
      t.equal(out.flush.sent, 1)
      t.equal(out.usage, '3', 'three metered requests reached Kinde as one record of 3')
      t.same(out.errors.plugin, { name: 'InvalidOptionError', code: 'KINDE_METERING_INVALID_OPTION', option: 'flushInterval', isBase: true })
      t.same(out.errors.redis, { name: 'InvalidOptionError', code: 'KINDE_METERING_INVALID_OPTION', option: 'client', isInvalidOption: true },
        'the redis entry throws the same InvalidOptionError class as the main one')
      t.same(out.errors.KindeApiError, { code: 'KINDE_METERING_API_ERROR', isBase: true })
      t.same(out.errors.TokenError, { code: 'KINDE_METERING_TOKEN_ERROR', isBase: true })
      t.same(out.errors.KindeNetworkError, { code: 'KINDE_METERING_NETWORK_ERROR', isBase: true })
      t.same(out.expressMiddleware, { arity: 3, close: 'function', meter: 'function' }, 'express entry works without express installed')
      t.equal(out.deepImport, 'ERR_PACKAGE_PATH_NOT_EXPORTED')
    })
  }
  t.test('TypeScript consumers', async t => {
    t.same({ code: typesNode.code, diagnostics: typesNode.stdout }, { code: 0, diagnostics: '' }, 'NodeNext: ES module and CommonJS consumers')
    t.same({ code: typesBundler.code, diagnostics: typesBundler.stdout }, { code: 0, diagnostics: '' }, 'Bundler')
  })
})
