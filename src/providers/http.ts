import type { Dispatcher } from 'undici'
import type { z } from 'zod'
import { ServiceError } from '../errors.ts'
import type { Guard } from '../resilience/guard.ts'

export type UpstreamName = 'llm' | 'image' | 'image.fallback' | 'language' | 'metadata' | 'storage' | 'google-certs'

export interface RequestJsonOptions<T> {
  dispatcher: Dispatcher
  upstream: UpstreamName
  url: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  /** A JSON body; or raw bytes with their content type. */
  body?: unknown
  bytes?: { data: Buffer, contentType: string }
  schema: z.ZodType<T>
  maxResponseBytes: number
  signal?: AbortSignal | undefined
  /** Limits, circuit breaker and retries per upstream origin; absent in unit tests of one call. */
  guard?: Guard | undefined
  deadlineAt?: number | undefined
  /** Sees the headers of a 2xx answer, for callers that honour caching headers. */
  onHeaders?: ((headers: Dispatcher.ResponseData['headers']) => void) | undefined
}

/** What every provider call carries besides its own target: the pool, the request's signal and guard. */
export interface CallContext {
  dispatcher: Dispatcher
  signal?: AbortSignal | undefined
  guard?: Guard | undefined
  deadlineAt?: number | undefined
}

export type PostJsonOptions<T> = Omit<RequestJsonOptions<T>, 'method' | 'bytes'> & { body: unknown }

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])
const TOO_LARGE_CODES = new Set(['UND_ERR_RES_EXCEEDED_MAX_SIZE', 'CE_RESPONSE_TOO_LARGE'])

export function postJson<T> (options: PostJsonOptions<T>): Promise<T> {
  return requestJson({ ...options, method: 'POST' })
}

/**
 * Sends a request through the shared dispatcher and returns the validated JSON answer. Every body
 * is consumed, dumped or destroyed before this returns, so the socket goes back to the pool or away.
 */
export function requestJson<T> (options: RequestJsonOptions<T>): Promise<T> {
  const { guard } = options
  if (guard === undefined) return attempt(options)
  const call = { upstream: options.upstream, signal: options.signal, deadlineAt: options.deadlineAt }
  return guard.run(target(options.url).origin, call, () => attempt(options))
}

async function attempt<T> (options: RequestJsonOptions<T>): Promise<T> {
  const { upstream, signal, bytes } = options
  const { origin, path } = target(options.url)
  let response: Dispatcher.ResponseData
  try {
    response = await options.dispatcher.request({
      origin,
      path,
      method: options.method ?? 'POST',
      headers: {
        accept: 'application/json',
        ...(bytes !== undefined ? { 'content-type': bytes.contentType } : options.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...options.headers
      },
      body: bytes !== undefined ? bytes.data : options.body !== undefined ? JSON.stringify(options.body) : null,
      signal
    })
  } catch (error) {
    throw toServiceError(error, upstream, signal)
  }

  const { statusCode, headers, body } = response
  if (statusCode < 200 || statusCode > 299) {
    // A 429's body tells a rate limit (worth waiting for) from an exhausted quota (not worth it).
    // Otherwise dump() reads a bounded amount so the socket can be reused, and destroys it past that.
    const text = statusCode === 429 ? await readBounded(body, 16 * 1024).catch(() => '') : await body.dump().then(() => '', () => '')
    const retryAfterMs = retryAfter(headers)
    throw new ServiceError('upstream_error', {
      message: `The ${upstream} upstream answered ${statusCode}.`,
      details: {
        upstream,
        status: statusCode,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        ...(/insufficient_quota/.test(text) ? { quotaExhausted: true } : {})
      }
    })
  }

  options.onHeaders?.(headers)
  let text: string
  try {
    text = await readBounded(body, options.maxResponseBytes)
  } catch (error) {
    throw toServiceError(error, upstream, signal)
  }

  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new ServiceError('upstream_bad_response', {
      message: `The ${upstream} upstream answered with invalid JSON.`, details: { upstream }, cause: error
    })
  }
  return parseAnswer(options.schema, json, upstream)
}

// Upstream URLs come from configuration, so this stays as small as the set of endpoints.
const targets = new Map<string, { origin: string, path: string, hostname: string }>()

export function target (href: string) {
  let found = targets.get(href)
  if (found === undefined) {
    const url = new URL(href)
    found = { origin: url.origin, path: url.pathname + url.search, hostname: url.hostname }
    targets.set(href, found)
  }
  return found
}

export function parseAnswer<S extends z.ZodType> (schema: S, value: unknown, upstream: UpstreamName): z.output<S> {
  const parsed = schema.safeParse(value)
  if (parsed.success) return parsed.data
  throw new ServiceError('upstream_bad_response', {
    message: `The ${upstream} upstream answered with an unexpected shape.`,
    details: { upstream, issues: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })) },
    cause: parsed.error
  })
}

async function readBounded (body: Dispatcher.ResponseData['body'], maxBytes: number): Promise<string> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of body) {
    size += chunk.length
    if (size > maxBytes) {
      // Destroying the body closes the socket: reading the rest of an oversized answer is the
      // memory growth we are avoiding.
      body.destroy()
      throw Object.assign(new Error(`response exceeded ${maxBytes} bytes`), { code: 'CE_RESPONSE_TOO_LARGE' })
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}

/** OpenAI's retry-after-ms, else Retry-After in seconds or as an HTTP date. */
export function retryAfter (headers: Dispatcher.ResponseData['headers']): number | undefined {
  const ms = Number(headers['retry-after-ms'])
  if (Number.isFinite(ms) && ms >= 0) return ms
  const value = headers['retry-after']
  if (typeof value !== 'string' || value === '') return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}

export function toServiceError (error: unknown, upstream: UpstreamName, signal: AbortSignal | undefined): unknown {
  if (error instanceof ServiceError) return error
  // Our own cancellation is not an upstream failure: let the caller see its abort reason.
  if (signal?.aborted) return signal.reason
  const code = errorCode(error)
  if (TIMEOUT_CODES.has(code)) {
    return new ServiceError('upstream_timeout', { message: `The ${upstream} upstream did not answer in time.`, details: { upstream }, cause: error })
  }
  if (TOO_LARGE_CODES.has(code)) {
    return new ServiceError('upstream_response_too_large', { message: `The ${upstream} upstream answer exceeded the size limit.`, details: { upstream }, cause: error })
  }
  return new ServiceError('upstream_unavailable', { message: `The ${upstream} upstream could not be reached.`, details: { upstream }, cause: error })
}

function errorCode (error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code
  return ''
}
