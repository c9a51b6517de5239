import { ServiceError } from '../errors.ts'

/**
 * At most `maxInFlight` calls at once to one upstream, and at most `maxQueued` waiting behind
 * them. A call that finds the queue full is refused at once with 503 `overloaded`, so a burst
 * costs the caller milliseconds instead of queueing without bound.
 */
export function createLimiter ({ maxInFlight, maxQueued, upstream }: { maxInFlight: number, maxQueued: number, upstream: string }) {
  let running = 0
  const waiting: Array<{ resolve: () => void, reject: (error: unknown) => void, signal: AbortSignal | undefined, onAbort: () => void }> = []

  function release () {
    const next = waiting.shift()
    if (next === undefined) {
      running--
      return
    }
    next.signal?.removeEventListener('abort', next.onAbort)
    next.resolve()
  }

  async function acquire (signal?: AbortSignal) {
    signal?.throwIfAborted()
    if (running < maxInFlight) {
      running++
      return
    }
    if (waiting.length >= maxQueued) {
      throw new ServiceError('overloaded', {
        message: `Too many calls to the ${upstream} upstream are waiting; retry shortly.`,
        details: { upstream },
        headers: { 'retry-after': '1' }
      })
    }
    await new Promise<void>((resolve, reject) => {
      const entry = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          waiting.splice(waiting.indexOf(entry), 1)
          reject(signal!.reason)
        }
      }
      signal?.addEventListener('abort', entry.onAbort, { once: true })
      waiting.push(entry)
    })
  }

  return {
    async run<T> (fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      await acquire(signal)
      try {
        return await fn()
      } finally {
        release()
      }
    },
    stats: () => ({ running, queued: waiting.length })
  }
}

export type Limiter = ReturnType<typeof createLimiter>
