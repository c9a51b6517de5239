import { errors as joseErrors, jwtVerify } from 'jose'
import type { Dispatcher } from 'undici'
import { ServiceError } from '../errors.ts'
import { createKeySet, type KeySet, type KeySetOptions } from './key-set.ts'

const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com']

export interface GoogleIdTokenOptions {
  dispatcher: () => Dispatcher
  jwksUrl: string
  audience: string
  allowedServiceAccounts: readonly string[]
  keys: Pick<KeySetOptions, 'ttlMs' | 'cooldownMs' | 'maxStaleMs' | 'onFetch' | 'now'>
}

/**
 * Verifies Google-signed ID tokens: RS256 only (so `alg: none` and HMAC tricks fail), Google's
 * issuer, our audience, not expired, and an email on the allowed list. Google's signing keys come
 * from createKeySet, which bounds what any token, forged or not, can make us fetch.
 */
export function createGoogleIdTokenVerifier (options: GoogleIdTokenOptions) {
  const keySet = createKeySet({ dispatcher: options.dispatcher, url: options.jwksUrl, ...options.keys })

  async function verifyWith (keys: KeySet, token: string) {
    return jwtVerify(token, keys, { issuer: GOOGLE_ISSUERS, audience: options.audience, algorithms: ['RS256'] })
  }

  return async function verify (token: string) {
    let result
    try {
      result = await verifyWith(await keySet.current(), token)
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error instanceof ServiceError ? error : unauthenticated(error)
      result = await verifyWith(await keySet.afterMissingKey(), token).catch((again: unknown) => { throw unauthenticated(again) })
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
