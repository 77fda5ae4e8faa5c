// The placeholders README's TypeScript blocks use where a user's own code would be (see
// CONTRIBUTING.md): global, so a fragment needs no imports of its own. Importing the package's
// types here also brings its Fastify augmentation (`config.meter`, `reply.meter`, `app.metering`).

/** A Fastify app with kinde-metering registered. */
declare const app: import('fastify').FastifyInstance & { metering: import('kinde-metering').Metering }

/** A database the app keeps its organizations' members in. */
declare const db: { addMember (org: string, member: NewMember): Promise<NewMember[]> }
/** A member to add, as the request body names it. */
interface NewMember { email: string }

/** Express route handlers of the app. */
declare const searchRoute: import('express').RequestHandler
declare const exportCsv: import('express').RequestHandler
/** A language model call that reports the tokens it used. */
declare function llm (prompt: unknown): Promise<{ text: string, usage: { total_tokens: number } }>

/** A route handler and a reply, for the list of mistakes the types catch. */
declare const h: import('fastify').RouteHandlerMethod
declare const reply: import('fastify').FastifyReply

/** Fastify handlers' work: a search, a report export. */
declare function search (): Promise<{ results: unknown[] }>
declare function exportReport (): Promise<string>
