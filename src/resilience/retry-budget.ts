import { createRollingWindow } from './rolling-window.ts'

// Retries stay at or below a share of requests over a sliding window, per upstream kind, as
// Finagle's RetryBudget and Envoy's retry budgets do: when an upstream struggles, retries must not
// multiply the load on it. The floor (Finagle: 10 retries a second) keeps sporadic failures at low
// traffic retried, where a share of a few requests would round down to nothing.

export interface RetryBudgetOptions {
  ratio: number
  windowMs: number
  minPerWindow: number
  now?: () => number
}

export function createRetryBudget ({ ratio, windowMs, minPerWindow, now = Date.now }: RetryBudgetOptions) {
  const window = createRollingWindow(['requests', 'retries'], windowMs, now)
  return {
    /** Counts a first attempt. */
    recordRequest () {
      window.add('requests')
    },
    /** Spends one retry if the budget allows it, and says whether it did. */
    tryRetry () {
      if (window.sum('retries') >= Math.max(minPerWindow, ratio * window.sum('requests'))) return false
      window.add('retries')
      return true
    },
    stats () {
      return { requests: window.sum('requests'), retries: window.sum('retries') }
    }
  }
}

export type RetryBudget = ReturnType<typeof createRetryBudget>
