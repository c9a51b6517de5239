import { setTimeout as sleep } from 'node:timers/promises'
import { ServiceError } from '../errors.ts'
import { breakerTransitions, upstreamAttempts } from '../telemetry/instruments.ts'
import { createBreaker, type Breaker } from './breaker.ts'
import { createLimiter, type Limiter } from './limiter.ts'
import { createRetryBudget, type RetryBudget } from './retry-budget.ts'

export interface GuardOptions {
  maxAttempts: number
  backoffBaseMs: number
  backoffCapMs: number
  retryBudgetRatio: number
  retryBudgetMinPerSecond: number
  maxInFlight: number
  /**
   * The limit for an HTTPS origin when the pool offers HTTP/2 there (its connections carry many
   * calls each); unset, maxInFlight applies to every origin.
   */
  maxInFlightHttps?: number | undefined
  maxQueued: number
  breakerFailureRatio: number
  breakerMinVolume: number
  breakerConsecutiveFailures: number
  breakerOpenMs: number
  breakerHalfOpenProbes: number
}

export interface GuardedCall {
  /** The upstream kind: breakers and retry budgets are per kind, limits per origin. */
  upstream: string
  signal?: AbortSignal | undefined
  /** When the request's deadline passes (epoch ms); no wait is started that would outlast it. */
  deadlineAt?: number | undefined
  /** False once a retry is no longer possible: part of the answer has already reached the caller. */
  retryable?: (() => boolean) | undefined
}

const WINDOW_MS = 10_000
const RETRYABLE_CAUSES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED'])
const RETRYABLE_TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])
const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504])

// Abort reasons that mean "the upstream stalled past its own step limit", as opposed to our own
// deadline or a caller who left: only the first is the upstream's fault.
const stalls = new WeakSet<object>()

/** The abort reason for a step whose own time limit passed while the upstream had not answered. */
export function upstreamStall (error: ServiceError) {
  stalls.add(error)
  return error
}

function causeCode (error: ServiceError) {
  const cause = error.cause as { code?: unknown } | undefined
  return typeof cause?.code === 'string' ? cause.code : ''
}

function status (error: ServiceError) {
  return (error.details as { status?: number } | undefined)?.status
}

/**
 * Outcomes where the upstream produced no usable answer or asked to be asked again: connect errors,
 * resets, our per-attempt timeouts, 429 rate limits, 5xx, and malformed or wrong-shape answers (a
 * fresh answer is usually fine). A quota-exhausted 429 is not one: waiting does not refill a quota.
 */
export function isRetryable (error: unknown) {
  if (!(error instanceof ServiceError)) return false
  if (error.code === 'upstream_unavailable') return RETRYABLE_CAUSES.has(causeCode(error))
  if (error.code === 'upstream_timeout') return RETRYABLE_TIMEOUTS.has(causeCode(error))
  if (error.code === 'upstream_bad_response') return true
  const details = error.details as { quotaExhausted?: boolean } | undefined
  return error.code === 'upstream_error' && RETRYABLE_STATUSES.has(status(error) ?? 0) && details?.quotaExhausted !== true
}

/**
 * What the upstream did, for its breaker: 'fault' when it refused, reset, answered 5xx, stalled or
 * sent garbage; 'neutral' when the outcome says nothing about it (our own deadline or abort, a
 * caller who left, a 429 that the retry loop handles); 'ok' when it answered, even a 4xx.
 */
export function upstreamOutcome (error: unknown, signal: AbortSignal | undefined): 'fault' | 'neutral' | 'ok' {
  if (signal?.aborted) return stalls.has(signal.reason as object) ? 'fault' : 'neutral'
  if (!(error instanceof ServiceError)) return 'neutral'
  switch (error.code) {
    case 'upstream_unavailable':
    case 'upstream_timeout':
    case 'upstream_bad_response':
    case 'upstream_response_too_large':
      return 'fault'
    case 'upstream_error': {
      const code = status(error) ?? 0
      return code >= 500 ? 'fault' : code === 429 ? 'neutral' : 'ok'
    }
    default: return 'neutral'
  }
}

/**
 * One layer for every upstream call: a concurrency limit with a bounded queue per origin (sockets
 * are per origin), and per upstream kind a circuit breaker and a retry budget, so that an image
 * outage on a shared origin (api.openai.com) neither opens the LLM's breaker nor spends its retries.
 *
 * undici ships a retry interceptor, but it skips POST by default and has no retry budget, no
 * notion of our deadline and no way to tell a quota-exhausted 429 from a rate limit. Every call we
 * make is a POST, and retrying one is safe here: a retry happens only when the upstream gave no
 * usable answer or asked to be asked again, and the worst case is paying for one duplicate.
 */
export function createGuard (options: GuardOptions) {
  const limiters = new Map<string, Limiter>()
  const kinds = new Map<string, { breaker: Breaker, budget: RetryBudget, attempts: { first: number, retries: number } }>()

  function kindFor (upstream: string) {
    let kind = kinds.get(upstream)
    if (kind === undefined) {
      kind = {
        breaker: createBreaker({
          failureRatio: options.breakerFailureRatio,
          minVolume: options.breakerMinVolume,
          windowMs: WINDOW_MS,
          consecutiveFailures: options.breakerConsecutiveFailures,
          openMs: options.breakerOpenMs,
          halfOpenProbes: options.breakerHalfOpenProbes,
          onStateChange: (state) => breakerTransitions.add(1, { 'content_engine.upstream': upstream, 'content_engine.breaker.state': state })
        }),
        budget: createRetryBudget({ ratio: options.retryBudgetRatio, windowMs: WINDOW_MS, minPerWindow: options.retryBudgetMinPerSecond * WINDOW_MS / 1000 }),
        attempts: { first: 0, retries: 0 }
      }
      kinds.set(upstream, kind)
    }
    return kind
  }

  function limiterFor (origin: string, upstream: string) {
    let limiter = limiters.get(origin)
    if (limiter === undefined) {
      const maxInFlight = origin.startsWith('https:') ? options.maxInFlightHttps ?? options.maxInFlight : options.maxInFlight
      limiter = createLimiter({ maxInFlight, maxQueued: options.maxQueued, upstream })
      limiters.set(origin, limiter)
    }
    return limiter
  }

  async function attemptOnce<T> (origin: string, call: GuardedCall, tries: number, attempt: () => Promise<T>): Promise<T> {
    const { breaker, attempts } = kindFor(call.upstream)
    if (!breaker.tryAcquire()) {
      throw new ServiceError('circuit_open', {
        message: `The ${call.upstream} upstream is failing; calls are paused.`,
        details: { upstream: call.upstream },
        headers: { 'retry-after': String(Math.max(1, Math.ceil(breaker.retryAfterMs() / 1000))) }
      })
    }
    if (tries === 1) attempts.first++
    else attempts.retries++
    upstreamAttempts.add(1, { 'content_engine.upstream': call.upstream, 'content_engine.attempt': tries === 1 ? 'first' : 'retry' })
    try {
      const value = await limiterFor(origin, call.upstream).run(attempt, call.signal)
      breaker.success()
      return value
    } catch (error) {
      const outcome = upstreamOutcome(error, call.signal)
      if (outcome === 'fault') breaker.failure()
      else if (outcome === 'ok') breaker.success()
      else breaker.release()
      throw error
    }
  }

  return {
    async run<T> (origin: string, call: GuardedCall, attempt: () => Promise<T>): Promise<T> {
      const { budget } = kindFor(call.upstream)
      budget.recordRequest()
      for (let tries = 1; ; tries++) {
        try {
          return await attemptOnce(origin, call, tries, attempt)
        } catch (error) {
          if (call.signal?.aborted || !isRetryable(error) || tries >= options.maxAttempts || call.retryable?.() === false) throw error
          // No retry unless the breaker is closed. Open, the retry would wait out its backoff only
          // to be refused; half-open, this call was a probe and the upstream failed it, and the
          // breaker's few probes are for deciding, not for retrying. Failing now lets the caller
          // move to a fallback at once instead of after the backoff.
          if (kindFor(call.upstream).breaker.state !== 'closed') throw error
          const wait = waitBefore(error as ServiceError, tries)
          const remaining = (call.deadlineAt ?? Infinity) - Date.now()
          if (wait >= remaining) throw tooLongToWait(error as ServiceError, wait)
          if (!budget.tryRetry()) throw error
          await sleep(wait, undefined, { signal: call.signal })
        }
      }
    },
    stats: () => ({
      /** Per kind: breaker state, the budget's window, and every attempt since start. */
      upstreams: Object.fromEntries([...kinds].map(([upstream, { breaker, budget, attempts }]) => [upstream, { state: breaker.state, window: budget.stats(), attempts: { ...attempts } }])),
      origins: Object.fromEntries([...limiters].map(([origin, limiter]) => [origin, limiter.stats()]))
    }),
    close () {
      kinds.clear()
      limiters.clear()
    }
  }

  // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"), unless the upstream said when.
  function waitBefore (error: ServiceError, tries: number) {
    const asked = (error.details as { retryAfterMs?: number } | undefined)?.retryAfterMs
    if (asked !== undefined) return asked
    return Math.random() * Math.min(options.backoffCapMs, options.backoffBaseMs * 2 ** (tries - 1))
  }
}

/** The upstream asked us to wait longer than the caller can: say so now, with its Retry-After. */
function tooLongToWait (error: ServiceError, waitMs: number) {
  if (status(error) !== 429) return error
  return new ServiceError('upstream_rate_limited', {
    message: 'An upstream is rate-limiting us for longer than this request can wait.',
    details: error.details,
    headers: { 'retry-after': String(Math.ceil(waitMs / 1000)) },
    cause: error
  })
}

export type Guard = ReturnType<typeof createGuard>
