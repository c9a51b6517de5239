import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { ServiceError } from '../errors.ts'
import { requestJson } from '../providers/http.ts'

const jwks = z.object({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional() })).min(1) })
const KEYS_TTL_MS = 60 * 60_000
const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com']

export interface GoogleIdTokenOptions {
  dispatcher: () => Dispatcher
  jwksUrl: string
  audience: string
  allowedServiceAccounts: readonly string[]
  now?: () => number
}

/**
 * Verifies Google-signed ID tokens: RS256 only (so `alg: none` and HMAC tricks fail), Google's
 * issuer, our audience, not expired, and an email on the allowed list. Google's signing keys are
 * fetched through the shared pool (jose's own fetcher would be a second HTTP client), cached for
 * an hour and refreshed once, by one caller, when a token names a key we have not seen.
 */
export function createGoogleIdTokenVerifier (options: GoogleIdTokenOptions) {
  const now = options.now ?? Date.now
  let cached: { keys: ReturnType<typeof createLocalJWKSet>, fetchedAt: number } | undefined
  let inFlight: Promise<NonNullable<typeof cached>> | undefined

  function refresh () {
    inFlight ??= requestJson({
      dispatcher: options.dispatcher(), upstream: 'google-certs', url: options.jwksUrl, method: 'GET', schema: jwks, maxResponseBytes: 256 * 1024
    }).then((set) => {
      cached = { keys: createLocalJWKSet(set as JSONWebKeySet), fetchedAt: now() }
      return cached
    }).finally(() => { inFlight = undefined })
    return inFlight
  }

  async function verifyWith (keys: ReturnType<typeof createLocalJWKSet>, token: string) {
    return jwtVerify(token, keys, { issuer: GOOGLE_ISSUERS, audience: options.audience, algorithms: ['RS256'] })
  }

  return async function verify (token: string) {
    let keys = cached !== undefined && now() - cached.fetchedAt < KEYS_TTL_MS ? cached : await refresh()
    let result
    try {
      result = await verifyWith(keys.keys, token)
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw unauthenticated(error)
      keys = await refresh()
      result = await verifyWith(keys.keys, token).catch((again: unknown) => { throw unauthenticated(again) })
    }
    const { email, email_verified: verified } = result.payload as { email?: unknown, email_verified?: unknown }
    if (typeof email !== 'string' || verified !== true || !options.allowedServiceAccounts.includes(email)) {
      throw new ServiceError('forbidden', { message: 'This caller is not allowed to use the service.' })
    }
    return email
  }
}

function unauthenticated (cause: unknown) {
  return new ServiceError('unauthenticated', { message: 'The bearer token is not valid.', cause, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } })
}
