// Module resolve hook (registered by ./express4-register.mjs): `express` is the express4 alias.
export async function resolve (specifier, context, nextResolve) {
  return await nextResolve(specifier === 'express' ? 'express4' : specifier, context)
}
