import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createGuard, type GuardOptions } from '../resilience/guard.ts'
import { createHedger, type Hedger } from '../resilience/hedge.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Concurrency limits per origin; circuit breakers and retry budgets per upstream kind; the retry loop. */
    readonly guard: ReturnType<typeof createGuard>
    /** Hedged Natural Language calls, with their p95 per call kind and their budget. */
    readonly hedger: Hedger
  }
}

export type UpstreamGuardOptions = GuardOptions & { hedgeRatio: number }

async function upstreamGuard (app: FastifyInstance, options: UpstreamGuardOptions) {
  const guard = createGuard(options)
  app.decorate('guard', guard)
  app.decorate('hedger', createHedger({ ratio: options.hedgeRatio }))
  app.addHook('onClose', async () => guard.close())
}

export default fp(upstreamGuard, { name: 'upstream-guard', fastify: '5.x' })
