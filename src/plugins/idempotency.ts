import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Post } from '../contract/schemas.ts'
import { ServiceError } from '../errors.ts'
import { fingerprint, parseIdempotencyKey, recordKey } from '../idempotency/key.ts'
import { createMemoryStore, createRedisStore, type IdempotencyStore, type Outcome } from '../idempotency/store.ts'
import { idempotencyOutcomes } from '../telemetry/instruments.ts'

export interface IdempotencyOptions {
  ttlMs: number
  leaseMs: number
}

/** A claimed key: the request runs, renews its lease, and then stores its post or frees the key. */
export interface Ticket {
  finish (post: Post): Promise<void>
  abandon (): Promise<void>
}

export type Admission = { kind: 'replay', outcome: Outcome } | { kind: 'run', ticket: Ticket } | undefined

declare module 'fastify' {
  interface FastifyInstance {
    /** Idempotency-Key handling (docs/api.md, "Idempotency"), on Redis with REDIS_URL, else in memory. */
    readonly idempotency: { begin (request: FastifyRequest, mode: 'json' | 'sse', deadlineAt: number): Promise<Admission> }
  }
}

// How often a request told to wait (Prefer: wait=N) looks again.
const POLL_MS = 200
const RETRY_AFTER_S = 5

/** RFC 7240 `Prefer: wait=N`, in seconds; 0 when absent. */
function preferredWaitMs (header: string | string[] | undefined) {
  const match = /(?:^|[,;\s])wait\s*=\s*"?(\d{1,6})"?/i.exec(String(header ?? ''))
  return match === null ? 0 : Number(match[1]) * 1000
}

/**
 * What is kept of a post: everything but image bytes. Without IMAGE_BUCKET the image is a data:
 * URL, hundreds of kilobytes; the record keeps no image and its replays say so in a warning.
 */
export function retainable (post: Post): Post {
  if (post.image === null || !post.image.url.startsWith('data:')) return post
  return {
    ...post,
    image: null,
    warnings: [...post.warnings, { step: 'image', code: 'image_not_retained', message: 'The image was inline (no IMAGE_BUCKET), and idempotency records keep no image bytes: this replay has no image.' }]
  }
}

async function idempotency (app: FastifyInstance, options: IdempotencyOptions) {
  let store: IdempotencyStore | undefined
  app.addHook('onReady', async () => {
    store = app.redis === undefined ? createMemoryStore() : createRedisStore(app.redis, options.ttlMs + options.leaseMs)
  })

  const unavailable = (error: unknown) => {
    app.redisFailed('idempotency', error)
    idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'unavailable' })
    // Fail closed: the caller asked for at most one post, and without the store that cannot be
    // promised. A request without the header is not affected.
    return new ServiceError('idempotency_unavailable', { headers: { 'retry-after': '1' }, cause: error })
  }

  async function begin (request: FastifyRequest, mode: 'json' | 'sse', deadlineAt: number): Promise<Admission> {
    const key = parseIdempotencyKey(request.headers['idempotency-key'])
    if (key === undefined) return undefined
    const record = recordKey(request.caller, 'POST /generate', key)
    const print = fingerprint(request.body, mode)
    const waitUntil = Math.min(Date.now() + preferredWaitMs(request.headers.prefer), deadlineAt - 1_000)

    for (;;) {
      let claim
      try {
        claim = await store!.claim(record, print, options.leaseMs)
      } catch (error) {
        throw unavailable(error)
      }
      // A different request under the same key is refused first, running or not (422 before 409).
      if (claim.state !== 'claimed' && claim.fingerprint !== print) {
        idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'mismatch' })
        request.log.info({ idempotencyRecord: record }, 'Idempotency-Key reused with a different request: 422')
        throw new ServiceError('idempotency_key_reused')
      }
      if (claim.state === 'done') {
        idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'replayed' })
        request.log.info({ idempotencyRecord: record }, 'Idempotency-Key replayed: no upstream call')
        return { kind: 'replay', outcome: claim.outcome }
      }
      if (claim.state === 'claimed') {
        idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'claimed' })
        return { kind: 'run', ticket: hold(record, claim.token, request.log) }
      }
      if (Date.now() + POLL_MS > waitUntil) {
        idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'conflict' })
        request.log.info({ idempotencyRecord: record }, 'Idempotency-Key still running elsewhere: 409')
        throw new ServiceError('request_in_progress', { headers: { 'retry-after': String(RETRY_AFTER_S) } })
      }
      await sleep(POLL_MS)
    }
  }

  function hold (record: string, token: string, log: FastifyRequest['log']): Ticket {
    let lost = false
    const renewal = setInterval(() => {
      store!.renew(record, token, options.leaseMs).then((held) => {
        if (held || lost) return
        lost = true
        idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'lost' })
        log.warn({ idempotencyRecord: record }, 'the Idempotency-Key lease lapsed and passed on; this result will not be stored')
      }, (error) => app.redisFailed('idempotency', error))
    }, Math.floor(options.leaseMs / 3))
    return {
      async finish (post) {
        clearInterval(renewal)
        try {
          const stored = await store!.complete(record, token, { status: 200, body: JSON.stringify(retainable(post)) }, options.ttlMs)
          idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': stored ? 'stored' : 'lost' })
          if (!stored) log.warn({ idempotencyRecord: record }, 'the Idempotency-Key lease had lapsed; the post was served but not stored')
        } catch (error) {
          // The post is still served; the key frees itself when the lease lapses.
          app.redisFailed('idempotency', error)
        }
      },
      async abandon () {
        clearInterval(renewal)
        try {
          if (await store!.release(record, token)) idempotencyOutcomes.add(1, { 'content_engine.idempotency.outcome': 'released' })
        } catch (error) {
          app.redisFailed('idempotency', error)
        }
      }
    }
  }

  app.decorate('idempotency', { begin })
}

export default fp(idempotency, { name: 'idempotency', fastify: '5.x', dependencies: ['redis'] })
