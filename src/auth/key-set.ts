import { createLocalJWKSet, type JSONWebKeySet } from 'jose'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { ServiceError } from '../errors.ts'
import { requestJson } from '../providers/http.ts'

const jwks = z.object({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional() })).min(1) })
// jose's remote key set uses the same 5 s for one fetch.
const FETCH_TIMEOUT_MS = 5_000

export interface KeySetOptions {
  dispatcher: () => Dispatcher
  url: string
  /** Longest time a fetched set is fresh; a shorter Cache-Control max-age wins. */
  ttlMs: number
  /** After any fetch, ok or not, no other starts for this long (jose's cooldownDuration). */
  cooldownMs: number
  /** How long past its fetch a set may still verify tokens while refreshes fail. */
  maxStaleMs: number
  onFetch?: (outcome: 'ok' | 'error', error?: unknown) => void
  now?: () => number
}

export type KeySet = ReturnType<typeof createLocalJWKSet>

/**
 * The signing keys, fetched through the shared pool and cached. A caller with no credential can
 * present a token naming any key id, so nothing a caller sends may fetch more than once per
 * cooldown: a missing key id inside the cooldown is simply not found. A failed refresh keeps the
 * last good set serving until it is `maxStaleMs` old, because a key endpoint that is down must not
 * lock out callers whose keys we still hold. There is no circuit breaker and no retry here: the
 * cooldown already bounds what the endpoint sees to one request per period.
 */
export function createKeySet (options: KeySetOptions) {
  const now = options.now ?? Date.now
  let cached: { keys: KeySet, fetchedAt: number, freshUntil: number } | undefined
  let lastAttemptAt = -Infinity
  let inFlight: Promise<void> | undefined

  async function fetchKeys () {
    lastAttemptAt = now()
    let maxAgeMs: number | undefined
    try {
      const set = await requestJson({
        dispatcher: options.dispatcher(),
        upstream: 'google-certs',
        url: options.url,
        method: 'GET',
        schema: jwks,
        maxResponseBytes: 256 * 1024,
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
        onHeaders: (headers) => { maxAgeMs = maxAge(headers['cache-control']) }
      })
      const fetchedAt = now()
      cached = { keys: createLocalJWKSet(set as JSONWebKeySet), fetchedAt, freshUntil: fetchedAt + Math.min(options.ttlMs, maxAgeMs ?? Infinity) }
      options.onFetch?.('ok')
    } catch (error) {
      options.onFetch?.('error', error)
    }
  }

  function refresh () {
    if (inFlight === undefined && now() - lastAttemptAt >= options.cooldownMs) {
      inFlight = fetchKeys().finally(() => { inFlight = undefined })
    }
    return inFlight
  }

  function usable () {
    if (cached !== undefined && now() - cached.fetchedAt < options.maxStaleMs) return cached.keys
    throw new ServiceError('upstream_unavailable', {
      message: 'The keys that verify callers\' tokens could not be fetched.', details: { upstream: 'google-certs' }
    })
  }

  return {
    /** Fresh keys if a fetch is allowed, else the last good ones while they are usable. */
    async current () {
      if (cached === undefined || now() >= cached.freshUntil) await refresh()
      return usable()
    },
    /** A token named a key we lack: refetch once if the cooldown allows, else answer from the cache. */
    async afterMissingKey () {
      await refresh()
      return usable()
    }
  }
}

/** Seconds of `Cache-Control: max-age=N` as milliseconds; undefined when absent or not cacheable. */
export function maxAge (header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header.join(',') : header
  if (value === undefined) return undefined
  if (/(^|,)\s*(no-store|no-cache)\s*(,|$)/i.test(value)) return 0
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/i.exec(value)
  return match === null ? undefined : Number(match[1]) * 1000
}
