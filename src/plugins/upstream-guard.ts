import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { createGuard, type GuardOptions } from '../resilience/guard.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Concurrency limits, circuit breakers and the retry loop, per upstream origin. */
    readonly guard: ReturnType<typeof createGuard>
  }
}

async function upstreamGuard (app: FastifyInstance, options: GuardOptions) {
  const guard = createGuard(options)
  app.decorate('guard', guard)
  // The breakers keep rolling-window timers: stop them with the app.
  app.addHook('onClose', async () => guard.close())
}

export default fp(upstreamGuard, { name: 'upstream-guard', fastify: '5.x' })
