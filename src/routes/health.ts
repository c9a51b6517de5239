import type { FastifyInstance } from 'fastify'

export default async function healthRoutes (app: FastifyInstance) {
  // Liveness only: it never calls an upstream, so a slow provider cannot get instances killed.
  app.get('/healthz', async () => ({ status: 'ok' }))
}
