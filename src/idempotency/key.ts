import { createHash } from 'node:crypto'
import { stringify } from 'safe-stable-stringify'
import { ServiceError } from '../errors.ts'

export const MAX_KEY_LENGTH = 255

// draft-ietf-httpapi-idempotency-key-header: the value is an RFC 8941 sf-string, quoted on the
// wire, with \" and \\ its only escapes. Stripe and most clients send it bare: both are accepted.
const QUOTED = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/
// A bare key: printable ASCII, no quote (a half-quoted value is a mistake, not a key).
const BARE = /^[\x20\x21\x23-\x7e]+$/

function invalid (message: string) {
  return new ServiceError('invalid_request', { message, details: [{ path: ['headers', 'idempotency-key'], message }] })
}

/** The key a caller sent, unquoted; undefined without the header; 400 for anything else. */
export function parseIdempotencyKey (header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  if (typeof header !== 'string') throw invalid('Send one Idempotency-Key header, not several.')
  const quoted = QUOTED.exec(header)
  const key = quoted === null ? header : quoted[1]!.replace(/\\(["\\])/g, '$1')
  if (quoted === null && !BARE.test(header)) {
    throw invalid('An Idempotency-Key is printable ASCII: a structured-field string ("...") or the bare key, without stray quotes or control characters.')
  }
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) throw invalid(`An Idempotency-Key has 1 to ${MAX_KEY_LENGTH} characters.`)
  return key
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')

/**
 * Where a key's record lives: the caller's identity, the route and the key, hashed together, so one
 * caller can never name another's record and the key's bytes never reach Redis. The {braces} are a
 * Redis Cluster hash tag: the record and its fencing counter stay in one slot.
 */
export function recordKey (caller: string, route: string, key: string) {
  return `ce:idem:{${sha256(`${caller}\n${route}\n${key}`)}}`
}

/**
 * What makes two requests "the same": the validated body (defaults applied, keys sorted, so the
 * order a caller writes its fields in does not matter) and the response mode, JSON or SSE.
 */
export function fingerprint (body: unknown, mode: 'json' | 'sse') {
  return sha256(stringify({ body, mode })!)
}
