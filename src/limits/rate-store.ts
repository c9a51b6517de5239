import { createRequire } from 'node:module'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import type { Redis } from 'ioredis'

type Callback = (error: Error | null, result?: { current: number, ttl: number }) => void
interface Store {
  incr (key: string, callback: Callback, timeWindow: number, max: number): void
  child (routeOptions: unknown): Store
}
type StoreCtor = new (...args: unknown[]) => Store

// @fastify/rate-limit's own stores (no exports map, so their files can be required): its Redis
// store is an atomic fixed window (one Lua INCR + PEXPIRE), its local one an LRU of counters.
const require = createRequire(import.meta.url)
const RedisStore: StoreCtor = require('@fastify/rate-limit/store/RedisStore')
const LocalStore: StoreCtor = require('@fastify/rate-limit/store/LocalStore')

/**
 * A rate-limit store that counts in Redis when there is one and it answers, and in this instance's
 * memory otherwise: with Redis down the limit still holds per instance (fail open to the local
 * count, counted by `onError`) instead of refusing every caller or none.
 */
export function sharedRateStore ({ redis, onError }: { redis: () => Redis | undefined, onError: (error: unknown) => void }) {
  return class SharedRateStore implements FastifyRateLimitStore {
    readonly #local: Store
    readonly #prefix: string
    #shared: Store | undefined

    // A plain fixed window in both (no continueExceeding, no exponential backoff), as auth.ts asks.
    constructor (_options: unknown, prefix = 'ce:rate:') {
      this.#local = new LocalStore(false, false)
      this.#prefix = prefix
    }

    incr (key: string, callback: Callback, timeWindow: number, max: number) {
      const client = redis()
      if (client === undefined) return this.#local.incr(key, callback, timeWindow, max)
      this.#shared ??= new RedisStore(false, false, client, this.#prefix)
      this.#shared.incr(key, (error, result) => {
        if (error === null) return callback(null, result)
        onError(error)
        this.#local.incr(key, callback, timeWindow, max)
      }, timeWindow, max)
    }

    // The plugin passes the route's merged options with a routeInfo its types do not declare.
    child (routeOptions: Parameters<FastifyRateLimitStore['child']>[0]) {
      const { routeInfo } = routeOptions as unknown as { routeInfo: { method: string, url: string } }
      return new SharedRateStore(routeOptions, `${this.#prefix}${routeInfo.method}${routeInfo.url}-`)
    }
  }
}
