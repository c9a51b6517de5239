import type { FastifyInstance } from 'fastify'
import { buildOpenApi } from '../contract/openapi.ts'
import examples from '../contract/examples.json' with { type: 'json' }

/**
 * GET /openapi.json and GET /docs (DOCS=true). The page is Scalar's, its script served from the
 * package by this instance, not a CDN; it sends "try it" requests to this same origin.
 */
export default async function contractRoutes (app: FastifyInstance) {
  const document = buildOpenApi(examples)
  app.get('/openapi.json', async () => document)
  const { default: scalar } = await import('@scalar/fastify-api-reference')
  // No web fonts from Scalar's CDN: the page needs nothing but this instance.
  await app.register(scalar, { routePrefix: '/docs', configuration: { content: () => document, title: 'content-engine API', withDefaultFonts: false }, logLevel: 'silent' })
}
