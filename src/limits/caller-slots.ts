import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'

/** Gives up a slot; safe to call more than once. */
export type Release = () => void

/**
 * Per-caller concurrency: at most `max` generations of one caller at once. In memory, a count per
 * caller in this instance. With Redis, a sorted set per caller shared by every instance: each slot
 * is a member whose score is its lease's end, renewed while the request runs, so the slots of an
 * instance that died come back within a lease instead of never.
 */
export interface CallerSlots {
  /** A release function, or undefined when the caller already holds `max` slots. */
  acquire (caller: string, max: number): Promise<Release | undefined>
}

export function createMemorySlots (): CallerSlots {
  const held = new Map<string, number>()
  return {
    async acquire (caller, max) {
      const mine = held.get(caller) ?? 0
      if (mine >= max) return undefined
      held.set(caller, mine + 1)
      let released = false
      return () => {
        if (released) return
        released = true
        const left = (held.get(caller) ?? 1) - 1
        if (left === 0) held.delete(caller)
        else held.set(caller, left)
      }
    }
  }
}

// Redis's own clock, so the instances' clocks need not agree. Expired slots are dropped first.
const ACQUIRE = `
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`

const RENEW = `
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`

interface SlotCommands {
  slotAcquire (key: string, member: string, max: number, leaseMs: number): Promise<number>
  slotRenew (key: string, member: string, leaseMs: number): Promise<number>
}

/**
 * Slots in Redis, falling back to `local` when Redis fails: the limit then holds per instance
 * (fail open to the instance's own count, with `onError` counting it) rather than refusing callers
 * for a fault of ours or letting them past every limit.
 */
export function createRedisSlots ({ redis, leaseMs, local, onError }: { redis: Redis, leaseMs: number, local: CallerSlots, onError: (error: unknown) => void }): CallerSlots {
  const commands = redis as Redis & Partial<SlotCommands>
  if (commands.slotAcquire === undefined) {
    redis.defineCommand('slotAcquire', { numberOfKeys: 1, lua: ACQUIRE })
    redis.defineCommand('slotRenew', { numberOfKeys: 1, lua: RENEW })
  }
  const run = redis as Redis & SlotCommands
  return {
    async acquire (caller, max) {
      const key = `ce:slots:{${caller}}`
      const member = randomUUID()
      try {
        if (await run.slotAcquire(key, member, max, leaseMs) === 0) return undefined
      } catch (error) {
        onError(error)
        return await local.acquire(caller, max)
      }
      const renewal = setInterval(() => { run.slotRenew(key, member, leaseMs).catch(onError) }, Math.floor(leaseMs / 3))
      let released = false
      return () => {
        if (released) return
        released = true
        clearInterval(renewal)
        // If this fails, the slot lapses with its lease.
        redis.zrem(key, member).catch(onError)
      }
    }
  }
}
