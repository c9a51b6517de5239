import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { callerForKey, type ApiKey } from '../auth/api-keys.ts'
import { createGoogleIdTokenVerifier } from '../auth/google-id-token.ts'
import { ServiceError } from '../errors.ts'
import { sharedRateStore } from '../limits/rate-store.ts'
import { keySetFetches } from '../telemetry/instruments.ts'

// Google's certificates endpoint says how long to cache with max-age (a few hours); this caps it.
const KEYS_TTL_MS = 60 * 60_000

export interface AuthOptions {
  mode: 'none' | 'api-key' | 'google-id-token'
  apiKeys: readonly ApiKey[]
  audience: string | undefined
  allowedServiceAccounts: readonly string[]
  jwksUrl: string
  jwksCooldownMs: number
  jwksMaxStaleMs: number
  perMinute: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling: an API key's name or a service account's email; '' when AUTH_MODE=none. */
    caller: string
  }
  interface FastifyInstance {
    /** onRequest hook for routes that spend money: authenticates the caller (AUTH_MODE). */
    readonly authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

const unauthenticated = () => new ServiceError('unauthenticated', { headers: { 'www-authenticate': 'Bearer' } })

function bearer (request: FastifyRequest) {
  const header = request.headers.authorization
  return typeof header === 'string' && /^Bearer \S+$/i.test(header) ? header.slice(7) : undefined
}

async function auth (app: FastifyInstance, options: AuthOptions) {
  app.decorateRequest('caller', '')
  const verify = options.mode === 'google-id-token'
    ? createGoogleIdTokenVerifier({
      dispatcher: () => app.upstream,
      jwksUrl: options.jwksUrl,
      audience: options.audience!,
      allowedServiceAccounts: options.allowedServiceAccounts,
      keys: {
        ttlMs: KEYS_TTL_MS,
        cooldownMs: options.jwksCooldownMs,
        maxStaleMs: options.jwksMaxStaleMs,
        onFetch: (outcome, error) => {
          keySetFetches.add(1, { 'content_engine.outcome': outcome })
          if (error !== undefined) app.log.warn({ err: error, url: options.jwksUrl }, 'fetching the token signing keys failed; the cached keys, if any, still serve')
        }
      }
    })
    : undefined

  app.decorate('authenticate', async (request: FastifyRequest) => {
    if (options.mode === 'none') return
    if (options.mode === 'api-key') {
      const presented = bearer(request) ?? request.headers['x-api-key']
      const caller = typeof presented === 'string' ? callerForKey(options.apiKeys, presented) : undefined
      if (caller === undefined) throw unauthenticated()
      request.caller = `key:${caller}`
      return
    }
    const token = bearer(request)
    if (token === undefined) throw unauthenticated()
    request.caller = `sa:${await verify!(token)}`
  })

  // Per authenticated caller, not per address: behind Cloud Run's front end many callers share few
  // addresses. With AUTH_MODE=none nobody is identified, so only the instance-wide admission limit
  // applies. Counted before the body is read (preParsing runs after authenticate's onRequest).
  await app.register(rateLimit, {
    global: false,
    allowList: () => options.mode === 'none',
    hook: 'preParsing',
    max: options.perMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => request.caller,
    // With REDIS_URL the window is counted in Redis, so it holds across every instance.
    store: sharedRateStore({ redis: () => app.redis, onError: (error) => app.redisFailed('rate_limit', error) }),
    errorResponseBuilder: (request, context) => new ServiceError('rate_limited', {
      message: `Rate limit of ${context.max} requests a minute reached; retry in ${Math.ceil(context.ttl / 1000)} s.`,
      headers: { 'retry-after': String(Math.ceil(context.ttl / 1000)) }
    })
  })
}

export default fp(auth, { name: 'auth', fastify: '5.x', dependencies: ['upstream-pool', 'redis'] })
