import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { buildApp } from '../../src/app.ts'
import { simulatorUpstreams } from '../../src/config.ts'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF, startStack, testConfig } from '../helper.ts'
import { startRedis } from '../redis.ts'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/** Connections Redis sees from content-engine clients (CLIENT LIST, by the name the plugin sets). */
async function serviceConnections (url: string) {
  const observer = new Redis(url)
  try {
    const list = await observer.client('LIST') as string
    return list.split('\n').filter((line) => line.includes('name=content-engine')).length
  } finally {
    await observer.quit()
  }
}

test('Redis down at start-up: the service starts, is not ready, refuses keyed requests with 503 and serves the rest under local limits; once Redis is up it recovers without a restart', async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const started = performance.now()
  const { app } = await startStack(t, { env: { REDIS_URL: redis.url, AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha256('key-a')}`, RATE_LIMIT_PER_MINUTE: '3' } })
  assert.ok(performance.now() - started < 5_000, 'start-up does not wait long for Redis')
  const post = (headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'x-api-key': 'key-a', ...headers } })

  assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200)
  const notReady = await app.inject({ url: '/readyz' })
  assert.equal(notReady.statusCode, 503)
  assert.equal(notReady.json().error.code, 'not_ready')

  const keyed = await post({ 'idempotency-key': 'k' })
  assert.equal(keyed.statusCode, 503)
  assert.equal(keyed.json().error.code, 'idempotency_unavailable')
  assert.equal(keyed.headers['retry-after'], '1')
  // The rate limit falls back to this instance's own count: still enforced, never a 500.
  assert.deepEqual([(await post()).statusCode, (await post()).statusCode, (await post()).statusCode], [200, 200, 429])

  await redis.start()
  const by = Date.now() + 10_000
  while ((await app.inject({ url: '/readyz' })).statusCode !== 200 && Date.now() < by) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual((await app.inject({ url: '/readyz' })).json(), { status: 'ok', redis: 'ok' })
  assert.equal((await post({ 'idempotency-key': 'k' })).statusCode, 200)
})

test('without REDIS_URL the service is ready with no Redis at all', async (t) => {
  const { app } = await startStack(t)
  assert.deepEqual((await app.inject({ url: '/readyz' })).json(), { status: 'ok', redis: 'not_configured' })
})

test('the plugin opens one Redis connection at ready and closes it at close; a client it did not close stays (the guard fails on a leak)', async (t) => {
  const redis = await startRedis(t)
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const config = testConfig({ REDIS_URL: redis.url })
  const app = await buildApp({ config, upstreams: simulatorUpstreams(config, simulator.origin) })
  assert.equal(await serviceConnections(redis.url), 0, 'nothing connects before onReady')
  await app.ready()
  for (let i = 0; i < 5; i++) await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'idempotency-key': `k${i}` } })
  assert.equal(await serviceConnections(redis.url), 1, 'one connection, however many requests')
  await app.close()
  assert.equal(await serviceConnections(redis.url), 0, 'closed with the app')

  // The leaking variant: a client made outside the plugin (injected, so not the plugin's to close).
  const leaked = new Redis(redis.url, { connectionName: 'content-engine' })
  t.after(() => leaked.disconnect())
  const withLeak = await buildApp({ config, upstreams: simulatorUpstreams(config, simulator.origin), redisClient: leaked })
  await withLeak.ready()
  await withLeak.close()
  assert.equal(await serviceConnections(redis.url), 1, 'the guard sees a client left open')
})
