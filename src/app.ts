import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import sseModule, { type fastifySSE } from '@fastify/sse'
import Fastify, { LogController } from 'fastify'
import type { Redis } from 'ioredis'
import type { Dispatcher } from 'undici'
import type { Config, Upstreams } from './config.ts'
import { loggerOptions } from './logger.ts'
import { createTokenSource } from './providers/google-token.ts'
import accessLog from './plugins/access-log.ts'
import auth from './plugins/auth.ts'
import errorResponses, { clientErrorHandler, frameworkErrors } from './plugins/error-responses.ts'
import idempotency from './plugins/idempotency.ts'
import inFlight from './plugins/in-flight.ts'
import loadShedding from './plugins/load-shedding.ts'
import redis from './plugins/redis.ts'
import upstreamGuard from './plugins/upstream-guard.ts'
import upstreamPool from './plugins/upstream-pool.ts'
import { zodValidatorCompiler } from './plugins/zod-validation.ts'
import contractRoutes from './routes/contract.ts'
import generateRoutes from './routes/generate.ts'
import healthRoutes from './routes/health.ts'

export interface AppOptions {
  config: Config
  upstreams: Upstreams
  /** Replaces the upstream pool (tests pass a MockAgent); the app will not close it. */
  dispatcher?: Dispatcher
  /** Replaces the Redis client REDIS_URL would make (tests); the app will not close it. */
  redisClient?: Redis
  /** Human-readable logs (pino-pretty), for a terminal. */
  prettyLogs?: boolean
}

// @fastify/sse is CommonJS: its module.exports is the fastify-plugin-wrapped plugin (what must be
// registered), while its types call that the default export of an ES module.
const sse = sseModule as unknown as typeof fastifySSE

const REQUEST_ID = /^[\w.:-]{1,128}$/

// Callers may correlate with their own id, but an id that goes into logs and headers is checked.
function requestId (req: IncomingMessage) {
  const offered = req.headers['x-request-id']
  return typeof offered === 'string' && REQUEST_ID.test(offered) ? offered : randomUUID()
}

export async function buildApp ({ config, upstreams, dispatcher, redisClient, prettyLogs = false }: AppOptions) {
  const app = Fastify({
    logger: loggerOptions({ level: config.logLevel, ...config.log, pretty: prettyLogs }),
    bodyLimit: config.bodyLimitBytes,
    genReqId: requestId,
    trustProxy: config.trustProxy,
    // plugins/in-flight.ts answers 503 itself while closing, in the documented error shape.
    return503OnClosing: false,
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    clientErrorHandler,
    frameworkErrors
  })
  app.setValidatorCompiler(zodValidatorCompiler)
  // JSON only: Fastify's default text/plain parser would turn a plain-text body into a 400, not a 415.
  app.removeContentTypeParser('text/plain')
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  await app.register(accessLog)
  await app.register(errorResponses)
  await app.register(upstreamPool, { ...config.pool, dispatcher })
  await app.register(upstreamGuard, config.guard)
  await app.register(loadShedding, config.load)
  await app.register(redis, { url: config.redis?.url, caFile: config.redis?.caFile, commandTimeoutMs: config.redis?.commandTimeoutMs ?? 500, client: redisClient })
  await app.register(auth, { ...config.auth, perMinute: config.rateLimit.perMinute })
  await app.register(inFlight, { maxConcurrent: config.load.maxConcurrentRequests, maxPerCaller: config.rateLimit.concurrent, leaseMs: config.idempotency.leaseMs })
  await app.register(idempotency, config.idempotency)
  // Our own heartbeat (routes/post-stream.ts) goes out only after silence, not on a fixed clock.
  await app.register(sse, { heartbeatInterval: 0 })
  await app.register(healthRoutes)
  if (config.docs) await app.register(contractRoutes)
  const { metadataHost } = upstreams
  await app.register(generateRoutes, {
    upstreams,
    keywordsMax: config.keywordsMax,
    maxResponseBytes: config.pool.maxResponseBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    stepTimeoutsMs: config.stepTimeoutsMs,
    stream: config.stream,
    sse: config.sse,
    logPrompts: config.logPrompts,
    token: metadataHost === undefined ? undefined : createTokenSource({ dispatcher: () => app.upstream, metadataHost })
  })
  return app
}
