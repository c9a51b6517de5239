import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createGuard, type GuardOptions } from '../resilience/guard.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Concurrency limits per origin; circuit breakers and retry budgets per upstream kind; the retry loop. */
    readonly guard: ReturnType<typeof createGuard>
  }
}

async function upstreamGuard (app: FastifyInstance, options: GuardOptions) {
  const guard = createGuard(options)
  app.decorate('guard', guard)
  app.addHook('onClose', async () => guard.close())
}

export default fp(upstreamGuard, { name: 'upstream-guard', fastify: '5.x' })
