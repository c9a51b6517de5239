const BUCKET_MS = 1_000

/**
 * Counts over the last `windowMs`, in one-second buckets that are zeroed as time moves past
 * them: O(1) per event and no timers, so an idle upstream costs nothing.
 */
export function createRollingWindow<K extends string> (fields: readonly K[], windowMs: number, now: () => number = Date.now) {
  const buckets = Math.max(1, Math.ceil(windowMs / BUCKET_MS))
  const counts = Object.fromEntries(fields.map((field) => [field, new Array<number>(buckets).fill(0)])) as Record<K, number[]>
  let current = Math.floor(now() / BUCKET_MS)

  function advance () {
    const bucket = Math.floor(now() / BUCKET_MS)
    for (let step = Math.min(bucket - current, buckets); step > 0; step--) {
      const index = (bucket - step + 1) % buckets
      for (const field of fields) counts[field][index] = 0
    }
    current = Math.max(current, bucket)
    return bucket % buckets
  }

  return {
    add (field: K, amount = 1) {
      counts[field][advance()]! += amount
    },
    sum (field: K) {
      advance()
      let total = 0
      for (const value of counts[field]) total += value
      return total
    },
    reset () {
      for (const field of fields) counts[field].fill(0)
    }
  }
}
