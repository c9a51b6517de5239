import { createRollingWindow } from './rolling-window.ts'

export interface BreakerOptions {
  /** Failure share over the window that means "down", once the window has `minVolume` calls. */
  failureRatio: number
  minVolume: number
  windowMs: number
  /** Below `minVolume` no ratio means much: this many failures in a row open it instead. */
  consecutiveFailures: number
  openMs: number
  /** Calls let through at a time once the open period ends; a majority of this many decides. */
  halfOpenProbes: number
  onStateChange?: (state: BreakerState) => void
  now?: () => number
}

export type BreakerState = 'closed' | 'open' | 'half_open'

/**
 * A circuit breaker for an upstream that is down, not one that is merely flaky: it trips on a
 * failure *rate* over a rolling window with a minimum volume (Envoy's outlier detection, Hystrix),
 * so a 20 % fault rate, which retries absorb, never opens it. After `openMs` it lets up to
 * `halfOpenProbes` calls through at a time, and closes once a majority of that many succeeded, or
 * reopens once a majority failed. Outcomes that say nothing about the upstream (our own deadline, a caller who left)
 * are `release`d: they neither count nor decide a probe.
 *
 * Not opossum: its half-open state admits every call and decides on the first result, and it
 * counts a filtered error as a success, which closes a half-open breaker on a caller's own abort.
 */
export function createBreaker (options: BreakerOptions) {
  const now = options.now ?? Date.now
  const window = createRollingWindow(['calls', 'failures'], options.windowMs, now)
  let state: BreakerState = 'closed'
  let openedAt = 0
  let consecutive = 0
  // Probes in flight at once, not in all: a request that fans out (a plan, then its sections) must
  // not find the slots taken by its own finished calls while the breaker is still deciding.
  const probes = { inFlight: 0, successes: 0, failures: 0 }
  const majority = Math.floor(options.halfOpenProbes / 2) + 1

  function moveTo (next: BreakerState) {
    if (next === state) return
    state = next
    if (next === 'open') openedAt = now()
    if (next === 'half_open') Object.assign(probes, { inFlight: 0, successes: 0, failures: 0 })
    if (next === 'closed') { window.reset(); consecutive = 0 }
    options.onStateChange?.(next)
  }

  return {
    get state () {
      if (state === 'open' && now() - openedAt >= options.openMs) moveTo('half_open')
      return state
    },
    /** Milliseconds until a probe may go, for Retry-After. */
    retryAfterMs () {
      return Math.max(0, options.openMs - (now() - openedAt))
    },
    /** Whether a call may go now. Every admitted call must end in success, failure or release. */
    tryAcquire () {
      const current = this.state
      if (current === 'closed') return true
      if (current === 'open' || probes.inFlight >= options.halfOpenProbes) return false
      probes.inFlight++
      return true
    },
    success () {
      if (state === 'half_open') {
        probes.inFlight = Math.max(0, probes.inFlight - 1)
        if (++probes.successes >= majority) moveTo('closed')
        return
      }
      if (state !== 'closed') return
      consecutive = 0
      window.add('calls')
    },
    failure () {
      if (state === 'half_open') {
        probes.inFlight = Math.max(0, probes.inFlight - 1)
        if (++probes.failures >= majority) moveTo('open')
        return
      }
      if (state !== 'closed') return
      consecutive++
      window.add('calls')
      window.add('failures')
      const calls = window.sum('calls')
      const tripped = calls >= options.minVolume
        ? window.sum('failures') / calls >= options.failureRatio
        : consecutive >= options.consecutiveFailures
      if (tripped) moveTo('open')
    },
    /** An admitted call whose outcome says nothing about the upstream: free its probe slot. */
    release () {
      if (state === 'half_open') probes.inFlight = Math.max(0, probes.inFlight - 1)
    }
  }
}

export type Breaker = ReturnType<typeof createBreaker>
