/**
 * The error catalogue. Every non-2xx body is `{ error: { code, message, details? }, requestId }`,
 * and `code` is one of these keys; the one error handler in app.ts is the only place that shapes it.
 */
export const catalogue = {
  invalid_request: { status: 400, message: 'The request is invalid.' },
  unauthenticated: { status: 401, message: 'A valid credential is required.' },
  forbidden: { status: 403, message: 'This caller is not allowed to use the service.' },
  not_found: { status: 404, message: 'No such route.' },
  method_not_allowed: { status: 405, message: 'This path does not serve this method.' },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  request_in_progress: { status: 409, message: 'A request with this Idempotency-Key is still running; retry after Retry-After, or send Prefer: wait=N to wait for its result.' },
  idempotency_key_reused: { status: 422, message: 'This Idempotency-Key was already used with a different request; use a new key for a new request.' },
  rate_limited: { status: 429, message: 'Too many requests from this caller; retry later.' },
  unsupported_media_type: { status: 415, message: 'The request body must be application/json.' },
  headers_too_large: { status: 431, message: 'The request headers are too large.' },
  internal_error: { status: 500, message: 'Something went wrong on our side.' },
  upstream_error: { status: 502, message: 'An upstream answered with an error status.' },
  upstream_unavailable: { status: 502, message: 'An upstream could not be reached.' },
  upstream_bad_response: { status: 502, message: 'An upstream answered with something we could not use.' },
  upstream_response_too_large: { status: 502, message: 'An upstream answer exceeded the size limit.' },
  shutting_down: { status: 503, message: 'This instance is shutting down; retry the request.' },
  overloaded: { status: 503, message: 'The service is at capacity; retry shortly.' },
  not_ready: { status: 503, message: 'This instance cannot reach Redis yet; it is not ready for traffic.' },
  idempotency_unavailable: { status: 503, message: 'Idempotency-Keys cannot be checked right now (the shared store is unreachable); retry shortly.' },
  circuit_open: { status: 503, message: 'An upstream is failing; calls to it are paused.' },
  upstream_rate_limited: { status: 503, message: 'An upstream is rate-limiting us; retry later.' },
  upstream_timeout: { status: 504, message: 'An upstream did not answer in time.' }
} as const satisfies Record<string, { status: number, message: string }>

export type ErrorCode = keyof typeof catalogue

export interface ErrorBody {
  error: { code: ErrorCode, message: string, details?: unknown }
  requestId: string
}

export class ServiceError extends Error {
  override name = 'ServiceError'
  readonly code: ErrorCode
  readonly statusCode: number
  readonly details: unknown
  /** Response headers the answer must carry, such as Retry-After. */
  readonly headers: Record<string, string>

  constructor (code: ErrorCode, options: { message?: string, details?: unknown, cause?: unknown, headers?: Record<string, string> } = {}) {
    super(options.message ?? catalogue[code].message, { cause: options.cause })
    this.code = code
    this.statusCode = catalogue[code].status
    this.details = options.details
    this.headers = options.headers ?? {}
  }
}

export function isServiceError (error: unknown): error is ServiceError {
  return error instanceof ServiceError
}

/**
 * What a log line says of a catalogued error: its code, status, details and cause, not its stack.
 * The stack is that of the throw site, the same on every answer with the code, and some codes
 * come hundreds of times a second (a shed burst, an open breaker): a stack on each would be most
 * of the log volume and of the CPU a refusal costs, and tell nothing.
 */
export function errorLogFields (error: ServiceError) {
  const cause = error.cause
  return {
    code: error.code,
    status: error.statusCode,
    ...(error.details === undefined ? {} : { details: error.details }),
    ...(cause === undefined ? {} : { cause: cause instanceof Error ? { type: cause.name, message: cause.message, ...('code' in cause ? { code: cause.code } : {}) } : cause })
  }
}
