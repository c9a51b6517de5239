import { setTimeout as sleep } from 'node:timers/promises'
import CircuitBreaker from 'opossum'
import { ServiceError } from '../errors.ts'
import { createLimiter, type Limiter } from './limiter.ts'
import { createRetryBudget, type RetryBudget } from './retry-budget.ts'

export interface GuardOptions {
  maxAttempts: number
  backoffBaseMs: number
  backoffCapMs: number
  retryBudgetRatio: number
  maxInFlight: number
  maxQueued: number
  breakerConsecutiveFailures: number
  breakerFailureRatio: number
  breakerOpenMs: number
}

export interface GuardedCall {
  upstream: string
  signal?: AbortSignal | undefined
  /** When the request's deadline passes (epoch ms); no wait is started that would outlast it. */
  deadlineAt?: number | undefined
}

const RETRYABLE_CAUSES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED'])
const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504])

function causeCode (error: ServiceError) {
  const cause = error.cause as { code?: unknown } | undefined
  return typeof cause?.code === 'string' ? cause.code : ''
}

function status (error: ServiceError) {
  return (error.details as { status?: number } | undefined)?.status
}

/**
 * Connect errors, resets, 429 rate limits and 5xx: outcomes where the upstream produced no answer
 * or asked to be asked again. A quota-exhausted 429 is not one: waiting does not refill a quota.
 */
export function isRetryable (error: unknown) {
  if (!(error instanceof ServiceError)) return false
  if (error.code === 'upstream_unavailable') return RETRYABLE_CAUSES.has(causeCode(error))
  if (error.code === 'upstream_timeout') return causeCode(error) === 'UND_ERR_CONNECT_TIMEOUT'
  const details = error.details as { quotaExhausted?: boolean } | undefined
  return error.code === 'upstream_error' && RETRYABLE_STATUSES.has(status(error) ?? 0) && details?.quotaExhausted !== true
}

/** Failures that say the upstream is unwell; a bad request, a bad shape or our own abort do not. */
function countsAgainstUpstream (error: unknown) {
  if (!(error instanceof ServiceError)) return false
  if (error.code === 'upstream_unavailable' || error.code === 'upstream_timeout') return true
  const code = status(error) ?? 0
  return error.code === 'upstream_error' && (code >= 500 || code === 429)
}

/**
 * One layer for every upstream call: a concurrency limit with a bounded queue, a circuit breaker
 * (opossum, for its rolling failure window and half-open probing), and the one retry loop.
 *
 * undici ships a retry interceptor, but it skips POST by default and has no retry budget, no
 * notion of our deadline and no way to tell a quota-exhausted 429 from a rate limit. Every call we
 * make is a POST, and retrying one is safe here: a retry happens only when the upstream gave no
 * answer or asked to be asked again, and the worst case is paying for one duplicate completion.
 */
export function createGuard (options: GuardOptions) {
  const upstreams = new Map<string, { breaker: CircuitBreaker, budget: RetryBudget, limiter: Limiter, consecutiveFailures: number }>()

  function stateFor (origin: string, upstream: string) {
    let state = upstreams.get(origin)
    if (state === undefined) {
      const breaker = new CircuitBreaker(async (attempt: () => Promise<unknown>) => attempt(), {
        timeout: false,
        resetTimeout: options.breakerOpenMs,
        errorThresholdPercentage: options.breakerFailureRatio * 100,
        volumeThreshold: 10,
        rollingCountTimeout: 10_000,
        rollingCountBuckets: 10,
        errorFilter: (error: unknown) => !countsAgainstUpstream(error)
      })
      state = {
        breaker,
        budget: createRetryBudget({ ratio: options.retryBudgetRatio, windowMs: 10_000, minPerWindow: 3 }),
        limiter: createLimiter({ maxInFlight: options.maxInFlight, maxQueued: options.maxQueued, upstream }),
        consecutiveFailures: 0
      }
      upstreams.set(origin, state)
    }
    return state
  }

  async function attemptOnce<T> (origin: string, call: GuardedCall, attempt: () => Promise<T>): Promise<T> {
    const state = stateFor(origin, call.upstream)
    try {
      const value = await state.limiter.run(() => state.breaker.fire(attempt) as Promise<T>, call.signal)
      state.consecutiveFailures = 0
      return value
    } catch (error) {
      if ((error as { code?: string }).code === 'EOPENBREAKER') {
        throw new ServiceError('circuit_open', {
          message: `The ${call.upstream} upstream is failing; calls are paused.`,
          details: { upstream: call.upstream },
          headers: { 'retry-after': String(Math.ceil(options.breakerOpenMs / 1000)) }
        })
      }
      if (countsAgainstUpstream(error) && ++state.consecutiveFailures >= options.breakerConsecutiveFailures) state.breaker.open()
      throw error
    }
  }

  return {
    async run<T> (origin: string, call: GuardedCall, attempt: () => Promise<T>): Promise<T> {
      const { budget } = stateFor(origin, call.upstream)
      budget.recordRequest()
      for (let tries = 1; ; tries++) {
        try {
          return await attemptOnce(origin, call, attempt)
        } catch (error) {
          if (call.signal?.aborted || !isRetryable(error) || tries >= options.maxAttempts) throw error
          const wait = waitBefore(error as ServiceError, tries)
          const remaining = (call.deadlineAt ?? Infinity) - Date.now()
          if (wait >= remaining) throw tooLongToWait(error as ServiceError, wait)
          if (!budget.tryRetry()) throw error
          await sleep(wait, undefined, { signal: call.signal })
        }
      }
    },
    stats: () => Object.fromEntries([...upstreams].map(([origin, state]) => [origin, {
      opened: state.breaker.opened, halfOpen: state.breaker.halfOpen, ...state.budget.stats(), ...state.limiter.stats()
    }])),
    close () {
      for (const { breaker } of upstreams.values()) breaker.shutdown()
      upstreams.clear()
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
