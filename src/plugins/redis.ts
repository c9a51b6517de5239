import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { redisErrors } from '../telemetry/instruments.ts'

export interface RedisOptions {
  /** Unset: no Redis, and shared state lives in this instance's memory. */
  url: string | undefined
  caFile: string | undefined
  commandTimeoutMs: number
  /** A client made elsewhere (tests); the plugin uses it and never closes it. */
  client?: Redis | undefined
}

// How long start-up waits for a first connection before it goes on without one.
const START_WAIT_MS = 2_000
// Logged at most this often per operation while Redis stays down; the counter counts every error.
const LOG_EVERY_MS = 10_000

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The process's one Redis client, made in onReady and closed in onClose, or undefined without
     * REDIS_URL. Its commands fail at once while it is disconnected (no offline queue): every user
     * has a documented answer for that (docs/api.md, "Idempotency"; docs/operations.md).
     */
    readonly redis: Redis | undefined
    /** Counts a failed Redis command and logs it, at most every 10 s per operation. */
    readonly redisFailed: (operation: string, error: unknown) => void
  }
}

/**
 * ioredis 6, the client @fastify/rate-limit's Redis store is written for (it calls defineCommand,
 * which node-redis lacks), and the one @fastify/redis wraps. Options chosen for a request path that
 * must answer within its deadline whatever Redis does:
 * - enableOfflineQueue false: a command sent while disconnected fails at once instead of waiting
 *   for a reconnect that may never come (ioredis README, "Offline Queue");
 * - commandTimeout: a command on a connection that went silent fails after REDIS_COMMAND_TIMEOUT_MS;
 * - maxRetriesPerRequest 0: a failed command is not resent, the caller's fallback answers instead;
 * - the reconnect loop never gives up (retryStrategy always returns a delay), so the service
 *   recovers by itself when Redis is back.
 */
export function createRedisClient (options: { url: string, caFile: string | undefined, commandTimeoutMs: number }) {
  const url = new URL(options.url)
  return new Redis(options.url, {
    connectionName: 'content-engine',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2_000),
    // Memorystore's in-transit encryption: TLS 1.2+, verified against the instance's own CA.
    tls: url.protocol === 'rediss:'
      ? { ca: options.caFile === undefined ? undefined : readFileSync(options.caFile), minVersion: 'TLSv1.2' }
      : undefined
  })
}

async function redisPlugin (app: FastifyInstance, options: RedisOptions) {
  let client = options.client
  const owned = client === undefined
  const lastLogged = new Map<string, number>()

  app.decorate('redis', { getter: () => client })
  app.decorate('redisFailed', (operation: string, error: unknown) => {
    redisErrors.add(1, { 'content_engine.redis.operation': operation })
    const now = Date.now()
    if (now - (lastLogged.get(operation) ?? 0) < LOG_EVERY_MS) return
    lastLogged.set(operation, now)
    app.log.warn({ err: error, operation }, 'a Redis command failed; the documented fallback answered')
  })

  app.addHook('onReady', async () => {
    if (client !== undefined || options.url === undefined) return
    client = createRedisClient({ url: options.url, caFile: options.caFile, commandTimeoutMs: options.commandTimeoutMs })
    let down = false
    client.on('error', (error) => {
      if (!down) app.log.warn({ err: error }, 'Redis connection lost; reconnecting')
      down = true
    })
    client.on('ready', () => {
      if (down) app.log.info('Redis connection back')
      down = false
    })
    // Redis usually answers within milliseconds, so the first requests find it connected. But an
    // instance whose Redis is not reachable yet still starts after START_WAIT_MS (Direct VPC egress
    // can take a minute to connect on start-up): GET /readyz says not ready until Redis answers.
    const ready = once(client, 'ready').then(() => true, () => false)
    const waited = await Promise.race([ready, sleep(START_WAIT_MS, false, { ref: false })])
    if (!waited) app.log.warn({ waitedMs: START_WAIT_MS }, 'Redis is not reachable yet; starting anyway (GET /readyz is 503 until it is)')
  })

  app.addHook('onClose', async () => {
    if (!owned || client === undefined) return
    // QUIT lets Redis finish what it has; a client that is not connected is just dropped.
    if (client.status === 'ready') await client.quit().catch(() => client!.disconnect())
    else client.disconnect()
  })
}

export default fp(redisPlugin, { name: 'redis', fastify: '5.x' })
