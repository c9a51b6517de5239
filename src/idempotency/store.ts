import type { Redis } from 'ioredis'

/** A finished request as it replays: its status and its JSON body, as text. */
export interface Outcome {
  status: number
  body: string
}

export type Claim =
  /** The key was free: this request owns it, under a lease, with this fencing token. */
  | { state: 'claimed', token: string }
  /** Another request holds the key and is still running. */
  | { state: 'running', fingerprint: string }
  /** The key's request finished: its outcome replays. */
  | { state: 'done', fingerprint: string, outcome: Outcome }

/**
 * Where Idempotency-Keys live: records keyed by an opaque string (idempotency/key.ts derives it).
 * A claim is a lease: it lapses `leaseMs` after the last renew. Only the holder of the current
 * fencing token can renew, complete or release it, so a request whose lease lapsed (a stalled
 * instance) can never overwrite or free the record of the request that claimed the key after it.
 */
export interface IdempotencyStore {
  claim (key: string, fingerprint: string, leaseMs: number): Promise<Claim>
  renew (key: string, token: string, leaseMs: number): Promise<boolean>
  complete (key: string, token: string, outcome: Outcome, ttlMs: number): Promise<boolean>
  release (key: string, token: string): Promise<boolean>
}

interface MemoryRecord {
  state: 'running' | 'done'
  fingerprint: string
  token: string
  outcome: Outcome | undefined
  expiresAt: number
}

/**
 * The store of a single instance (no REDIS_URL). It keeps the newest `maxEntries` records: a post is
 * ~15 KB, so 24 h of them could not all stay in memory; the oldest go first (docs/api.md says so).
 * Expiry is checked on access, so there is no timer to leak.
 */
export function createMemoryStore ({ maxEntries = 1_000, now = Date.now }: { maxEntries?: number, now?: () => number } = {}): IdempotencyStore {
  const records = new Map<string, MemoryRecord>()
  let fence = 0

  function live (key: string) {
    const record = records.get(key)
    if (record !== undefined && record.expiresAt <= now()) {
      records.delete(key)
      return undefined
    }
    return record
  }

  function held (key: string, token: string) {
    const record = live(key)
    return record?.token === token ? record : undefined
  }

  return {
    async claim (key, fingerprint, leaseMs) {
      const record = live(key)
      if (record?.state === 'done') return { state: 'done', fingerprint: record.fingerprint, outcome: record.outcome! }
      if (record !== undefined) return { state: 'running', fingerprint: record.fingerprint }
      const token = String(++fence)
      records.set(key, { state: 'running', fingerprint, token, outcome: undefined, expiresAt: now() + leaseMs })
      while (records.size > maxEntries) records.delete(records.keys().next().value!)
      return { state: 'claimed', token }
    },
    async renew (key, token, leaseMs) {
      const record = held(key, token)
      if (record?.state !== 'running') return false
      record.expiresAt = now() + leaseMs
      return true
    },
    async complete (key, token, outcome, ttlMs) {
      const record = held(key, token)
      if (record?.state !== 'running') return false
      Object.assign(record, { state: 'done', outcome, expiresAt: now() + ttlMs })
      return true
    },
    async release (key, token) {
      if (held(key, token)?.state !== 'running') return false
      records.delete(key)
      return true
    }
  }
}

// Each check-and-write is one Lua script, so two instances can never both see a key free, and a
// stale holder's write is refused by Redis itself. KEYS[1] is the record (a hash), KEYS[2] the
// key's fencing counter; both carry the same {hash tag}, so they share a slot on a cluster too.
const CLAIM = `
local found = redis.call('HMGET', KEYS[1], 'state', 'fp', 'status', 'body')
if found[1] then return found end
local token = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'running', 'fp', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'claimed', tostring(token)}`

const RENEW = `
local found = redis.call('HMGET', KEYS[1], 'state', 'token')
if found[1] ~= 'running' or found[2] ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])`

const COMPLETE = `
local found = redis.call('HMGET', KEYS[1], 'state', 'token')
if found[1] ~= 'running' or found[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'body', ARGV[3])
return redis.call('PEXPIRE', KEYS[1], ARGV[4])`

const RELEASE = `
local found = redis.call('HMGET', KEYS[1], 'state', 'token')
if found[1] ~= 'running' or found[2] ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`

interface IdempotencyCommands {
  idemClaim (record: string, fence: string, fingerprint: string, leaseMs: number, fenceTtlMs: number): Promise<Array<string | null>>
  idemRenew (record: string, token: string, leaseMs: number): Promise<number>
  idemComplete (record: string, token: string, status: number, body: string, ttlMs: number): Promise<number>
  idemRelease (record: string, token: string): Promise<number>
}

/**
 * The shared store: one hash per key in Redis. `fenceTtlMs` keeps a key's fencing counter past any
 * record it fenced (the retention), so tokens only grow while a stale holder could still write.
 */
export function createRedisStore (redis: Redis, fenceTtlMs: number): IdempotencyStore {
  const commands = redis as Redis & Partial<IdempotencyCommands>
  if (commands.idemClaim === undefined) {
    redis.defineCommand('idemClaim', { numberOfKeys: 2, lua: CLAIM })
    redis.defineCommand('idemRenew', { numberOfKeys: 1, lua: RENEW })
    redis.defineCommand('idemComplete', { numberOfKeys: 1, lua: COMPLETE })
    redis.defineCommand('idemRelease', { numberOfKeys: 1, lua: RELEASE })
  }
  const run = redis as Redis & IdempotencyCommands
  return {
    async claim (key, fingerprint, leaseMs) {
      const [state, found, status, body] = await run.idemClaim(key, `${key}:fence`, fingerprint, leaseMs, fenceTtlMs)
      if (state === 'claimed') return { state, token: found! }
      if (state === 'done') return { state, fingerprint: found!, outcome: { status: Number(status), body: body! } }
      return { state: 'running', fingerprint: found! }
    },
    async renew (key, token, leaseMs) {
      return await run.idemRenew(key, token, leaseMs) === 1
    },
    async complete (key, token, outcome, ttlMs) {
      return await run.idemComplete(key, token, outcome.status, outcome.body, ttlMs) === 1
    },
    async release (key, token) {
      return await run.idemRelease(key, token) === 1
    }
  }
}
