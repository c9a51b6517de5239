import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Upstreams } from '../config.ts'
import { briefSchema } from '../generation/brief.ts'
import { generatePost } from '../generation/pipeline.ts'
import type { ZodTypeProvider } from '../plugins/zod-validation.ts'

export interface GenerateRouteOptions {
  upstreams: Upstreams
  keywordsMax: number
  maxResponseBytes: number
}

export default async function generateRoutes (app: FastifyInstance, options: GenerateRouteOptions) {
  app.withTypeProvider<ZodTypeProvider>().post('/generate', { schema: { body: briefSchema } }, async (request, reply) => {
    return generatePost(request.body, {
      dispatcher: app.upstream,
      upstreams: options.upstreams,
      keywordsMax: options.keywordsMax,
      maxResponseBytes: options.maxResponseBytes,
      signal: abortWhenCallerLeaves(reply)
    })
  })
}

// The reply's close, not the request's: Fastify's request `close` fires once a POST body has been
// read (fastify/fastify#4690). An unfinished response at close means the caller went away.
function abortWhenCallerLeaves (reply: FastifyReply) {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('the caller closed the connection'))
  })
  return controller.signal
}
