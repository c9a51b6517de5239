// Retries stay at or below a share of requests over a sliding window, per upstream, as Envoy's
// retry budgets and the SRE book advise: when an upstream struggles, retries must not multiply
// the load on it. A small floor lets sporadic failures (a stale keep-alive socket) still retry.
const BUCKET_MS = 1_000

export interface RetryBudgetOptions {
  ratio: number
  windowMs: number
  minPerWindow: number
  now?: () => number
}

export function createRetryBudget ({ ratio, windowMs, minPerWindow, now = Date.now }: RetryBudgetOptions) {
  const buckets = Math.max(1, Math.ceil(windowMs / BUCKET_MS))
  const requests = new Array<number>(buckets).fill(0)
  const retries = new Array<number>(buckets).fill(0)
  let current = Math.floor(now() / BUCKET_MS)

  function advance () {
    const bucket = Math.floor(now() / BUCKET_MS)
    for (let step = Math.min(bucket - current, buckets); step > 0; step--) {
      const index = (bucket - step + 1) % buckets
      requests[index] = 0
      retries[index] = 0
    }
    current = Math.max(current, bucket)
    return bucket % buckets
  }

  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0)

  return {
    /** Counts a first attempt. */
    recordRequest () {
      requests[advance()]!++
    },
    /** Spends one retry if the budget allows it, and says whether it did. */
    tryRetry () {
      const index = advance()
      if (sum(retries) >= Math.max(minPerWindow, ratio * sum(requests))) return false
      retries[index]!++
      return true
    },
    stats () {
      advance()
      return { requests: sum(requests), retries: sum(retries) }
    }
  }
}

export type RetryBudget = ReturnType<typeof createRetryBudget>
