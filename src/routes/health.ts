import type { FastifyInstance } from 'fastify'
import type { z } from 'zod'
import type { readinessSchema } from '../contract/schemas.ts'
import { ServiceError } from '../errors.ts'

type Readiness = z.output<typeof readinessSchema>

export default async function healthRoutes (app: FastifyInstance) {
  // Liveness only: it never calls an upstream, so a slow provider cannot get instances killed.
  app.get('/healthz', async () => ({ status: 'ok' }))

  // Readiness, service.yaml's startup probe: with REDIS_URL, not ready until Redis answers a PING
  // (Direct VPC egress can take a minute to connect on start-up; Google advises such a probe).
  // Never an upstream provider: their outages are the breakers' business, not the platform's.
  app.get('/readyz', async (): Promise<Readiness> => {
    if (app.redis === undefined) return { status: 'ok', redis: 'not_configured' }
    try {
      await app.redis.ping()
    } catch (error) {
      app.redisFailed('readiness', error)
      throw new ServiceError('not_ready', { headers: { 'retry-after': '1' } })
    }
    return { status: 'ok', redis: 'ok' }
  })
}
