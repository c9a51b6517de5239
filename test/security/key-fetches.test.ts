import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { GOOD_BRIEF, startStack } from '../helper.ts'
import { AUDIENCE, CALLER, googleKeys } from './google-keys.ts'

const googleEnv = (url: string, extra: Record<string, string> = {}) =>
  ({ AUTH_MODE: 'google-id-token', AUTH_AUDIENCE: AUDIENCE, AUTH_ALLOWED_SERVICE_ACCOUNTS: CALLER, AUTH_JWKS_URL: url, ...extra })

const upstreamCalls = (stats: { requests: Record<string, number> }) => Object.values(stats.requests).reduce((sum, count) => sum + count, 0)

async function inBatches<T> (count: number, size: number, send: (index: number) => Promise<T>) {
  const results: T[] = []
  for (let start = 0; start < count; start += size) {
    results.push(...await Promise.all(Array.from({ length: Math.min(size, count - start) }, (_, offset) => send(start + offset))))
  }
  return results
}

test('1,000 forged tokens naming unknown key ids make the service fetch the key set at most once, and each is 401 at once', async (t) => {
  const keys = await googleKeys(t)
  const { app, simulator } = await startStack(t, { env: googleEnv(keys.url) })
  const tokens = await Promise.all(Array.from({ length: 1_000 }, () => keys.sign({}, { kid: randomUUID() })))
  const started = performance.now()

  const statuses = await inBatches(tokens.length, 50, (index) =>
    app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { authorization: `Bearer ${tokens[index]}` } }).then((r) => r.statusCode))

  const seconds = (performance.now() - started) / 1000
  assert.ok(seconds < 10, `sent within 10 s: ${seconds.toFixed(1)} s`)
  assert.deepEqual([...new Set(statuses)], [401])
  assert.ok(keys.fetches() <= 1, `key-set fetches: ${keys.fetches()}`)
  assert.equal(upstreamCalls(simulator.stats()), 0, 'no provider call for a caller that is not authenticated')
})

test('after the cooldown, a token signed with a newly rotated key is accepted with one refetch; inside it, it is 401', async (t) => {
  const keys = await googleKeys(t)
  const { app } = await startStack(t, { env: googleEnv(keys.url, { AUTH_JWKS_COOLDOWN_MS: '400' }) })
  const post = async (kid: string) => (await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { authorization: `Bearer ${await keys.sign({}, { kid })}` } })).statusCode

  assert.equal(await post('k1'), 200)
  assert.equal(keys.fetches(), 1)
  await keys.addKey('k2')
  assert.equal(await post('k2'), 401, 'inside the cooldown a new kid is not found, and not fetched')
  assert.equal(keys.fetches(), 1)

  await sleep(450)
  assert.equal(await post('k2'), 200)
  assert.equal(await post('k2'), 200)
  assert.equal(await post('k1'), 200, 'the old key still verifies: rotation overlaps')
  assert.equal(keys.fetches(), 2, 'one refetch brought the rotated key')
})

test('while the key endpoint answers 500, cached keys keep verifying valid tokens, forged ones stay 401, and the endpoint sees one request per cooldown', async (t) => {
  // max-age=0, as a shorter Cache-Control than the hour-long TTL: every request wants fresh keys.
  const keys = await googleKeys(t, { cacheControl: 'public, max-age=0' })
  const cooldownMs = 300
  const { app } = await startStack(t, { env: googleEnv(keys.url, { AUTH_JWKS_COOLDOWN_MS: String(cooldownMs), RATE_LIMIT_PER_MINUTE: '100000' }) })
  const post = async (kid: string) => (await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { authorization: `Bearer ${await keys.sign({}, { kid })}` } })).statusCode

  assert.equal(await post('k1'), 200)
  keys.fail(true)
  const before = keys.fetches()
  const started = performance.now()
  const statuses: Record<string, number[]> = { valid: [], forged: [] }
  while (performance.now() - started < 1_500) {
    const [valid, forged] = await Promise.all([post('k1'), post(randomUUID())])
    statuses.valid!.push(valid)
    statuses.forged!.push(forged)
  }
  const elapsed = performance.now() - started
  const failedFetches = keys.fetches() - before

  assert.deepEqual([...new Set(statuses.valid)], [200], 'no valid caller was rejected')
  assert.deepEqual([...new Set(statuses.forged)], [401])
  assert.ok(statuses.valid!.length > 20, `requests sent: ${statuses.valid!.length}`)
  assert.ok(failedFetches <= Math.ceil(elapsed / cooldownMs) + 1, `${failedFetches} fetches in ${Math.round(elapsed)} ms`)
  assert.ok(failedFetches >= 2, `max-age=0 made it try to refresh: ${failedFetches}`)

  keys.fail(false)
  await sleep(cooldownMs + 50)
  assert.equal(await post('k1'), 200)
  assert.equal(keys.fetches(), before + failedFetches + 1, 'it recovered with one fetch')
})

test('an unauthenticated caller makes no outbound request: no key, a wrong key, garbage, a bad signature, an expired token', async (t) => {
  await t.test('api-key mode', async (t) => {
    const { app, simulator } = await startStack(t, { env: { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${'0'.repeat(64)}` } })
    for (const headers of [{}, { 'x-api-key': 'nope' }, { authorization: 'Bearer nope' }, { authorization: 'Basic YTpi' }]) {
      assert.equal((await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers })).statusCode, 401)
    }
    assert.equal(upstreamCalls(simulator.stats()), 0)
  })
  await t.test('google-id-token mode', async (t) => {
    const keys = await googleKeys(t)
    const { app, simulator } = await startStack(t, { env: googleEnv(keys.url) })
    const good = await keys.sign({})
    const badSignature = good.slice(0, good.lastIndexOf('.') + 1) + Buffer.from('x'.repeat(256)).toString('base64url')
    const tokens = [undefined, 'garbage', badSignature, await keys.sign({}, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), await keys.sign({}, { kid: 'unknown' })]
    for (let round = 0; round < 20; round++) {
      for (const token of tokens) {
        const headers = token === undefined ? {} : { authorization: `Bearer ${token}` }
        assert.equal((await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers })).statusCode, 401)
      }
    }
    assert.equal(upstreamCalls(simulator.stats()), 0, 'no provider, metadata or storage call')
    assert.ok(keys.fetches() <= 1, `key-set fetches for 100 unauthenticated requests: ${keys.fetches()}`)
  })
})
