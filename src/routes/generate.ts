import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Upstreams } from '../config.ts'
import type { StepTimeouts } from '../generation/steps.ts'
import type { StreamTimeouts } from '../providers/llm-stream.ts'
import { briefSchema } from '../generation/brief.ts'
import { randomUUID } from 'node:crypto'
import { generatePost, type PostEvents } from '../generation/pipeline.ts'
import { logCallerGone } from '../plugins/access-log.ts'
import { replayStream, streamPost, type StreamOptions } from './post-stream.ts'
import { StartGate } from './start-gate.ts'
import type { TokenSource } from '../providers/google-token.ts'
import type { ZodTypeProvider } from '../plugins/zod-validation.ts'
import type { Post } from '../contract/schemas.ts'

export interface GenerateRouteOptions {
  upstreams: Upstreams
  keywordsMax: number
  maxResponseBytes: number
  requestTimeoutMs: number
  stepTimeoutsMs: StepTimeouts
  stream: StreamTimeouts
  sse: StreamOptions
  token: TokenSource | undefined
  logPrompts: boolean
}

// A caller may shorten its deadline, never lengthen it past REQUEST_TIMEOUT_MS.
const headers = z.looseObject({ 'x-request-timeout-ms': z.coerce.number().int().positive().optional() })

// How long a burst of arriving streams may hold back the pipelines of those already accepted.
const START_GATE_MAX_WAIT_MS = 50

export default async function generateRoutes (app: FastifyInstance, options: GenerateRouteOptions) {
  const startGate = new StartGate(START_GATE_MAX_WAIT_MS)
  app.withTypeProvider<ZodTypeProvider>().post('/generate', {
    schema: { body: briefSchema, headers },
    onRequest: [app.authenticate, app.inFlight.admit],
    config: { rateLimit: {} },
    // Accept: text/event-stream streams the post (routes/post-stream.ts); anything else gets JSON.
    // post-stream serialises each event itself (it counts the bytes), so the plugin passes it on.
    sse: { kind: 'dual', heartbeat: false, serializer: (data: unknown) => String(data) }
    // One deadline, the in-flight plugin's: it aborts every upstream call and answers 504. Fastify's
    // handlerTimeout, once a backstop here, never fired on a POST with a body; request.signal is not
    // used either, because Fastify aborts it as soon as a POST body has been read
    // (fastify/fastify#4690, checked in test/plugins/in-flight.test.ts).
  }, async (request, reply) => {
    const deadlineMs = Math.min(options.requestTimeoutMs, request.headers['x-request-timeout-ms'] ?? Infinity)
    const deadlineAt = Date.now() + deadlineMs
    // Idempotency-Key (docs/api.md): 400, 422 or 409 before any work, or a stored answer replayed.
    const admission = await app.idempotency.begin(request, reply.sse === undefined ? 'json' : 'sse', deadlineAt)
    if (admission?.kind === 'replay') {
      reply.header('idempotent-replayed', 'true')
      if (reply.sse !== undefined) return await replayStream(request, reply, admission.outcome)
      return reply.code(admission.outcome.status).type('application/json; charset=utf-8').send(admission.outcome.body)
    }
    const signal = app.inFlight.start(reply, deadlineMs)
    const id = randomUUID()
    const run = (events?: PostEvents): Promise<Post> => generatePost(request.body, {
      dispatcher: app.upstream,
      guard: app.guard,
      hedger: app.hedger,
      upstreams: options.upstreams,
      keywordsMax: options.keywordsMax,
      maxResponseBytes: options.maxResponseBytes,
      token: options.token,
      signal,
      logPrompt: options.logPrompts ? (messages) => request.log.info({ prompt: messages }, 'LLM prompt (LOG_PROMPTS)') : undefined,
      deadlineAt,
      stepTimeoutsMs: options.stepTimeoutsMs,
      stream: options.stream,
      id,
      events
    })
    const ticket = admission?.ticket
    // A keyed request runs to the end even if its caller leaves: the caller will retry with the
    // same key, and that retry should find the post (409 until then), not pay for it again.
    const generate = ticket === undefined
      ? run
      : (events?: PostEvents) => {
          const work = run(events).then(async (post) => {
            await ticket.finish(post)
            return post
          }, async (error: unknown) => {
            await ticket.abandon()
            throw error
          })
          app.inFlight.hold(reply, work)
          return work
        }
    if (reply.sse !== undefined) return await streamPost(request, reply, options.sse, id, generate, startGate)
    // Typed by the schema the contract publishes: a field the pipeline drops or renames fails tsc.
    const post: Post = await generate()
    // A keyed request that outlived its caller: its post is stored, and its access line says 499.
    if (reply.raw.closed) logCallerGone(request, reply)
    return post
  })
}
