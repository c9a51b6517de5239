import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { GOOD_BRIEF, startStack } from '../helper.ts'
import { startRedis } from '../redis.ts'
import { throwawayCertificates } from '../tls.ts'

// Memorystore for Redis with in-transit encryption and AUTH: TLS verified against the instance's
// own CA, and the AUTH string in the URL. Here a redis-server of the test's own plays it, with a CA
// and a certificate for 127.0.0.1 made by openssl for this test.
const certificates = (t: TestContext) => throwawayCertificates('redis', (remove) => t.after(remove))

test('rediss:// with the instance CA and an AUTH string: ready, and keys replay through it', async (t) => {
  const tls = certificates(t)
  const redis = await startRedis(t, { tls, password: 'auth string/with:odd@chars' })
  const { app } = await startStack(t, { env: { REDIS_URL: redis.url, REDIS_TLS_CA_FILE: tls.ca } })
  assert.deepEqual((await app.inject({ url: '/readyz' })).json(), { status: 'ok', redis: 'ok' })
  const post = () => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'idempotency-key': 'tls' } })
  assert.equal((await post()).statusCode, 200)
  assert.equal((await post()).headers['idempotent-replayed'], 'true')
})

test('a server certificate from another CA, or a wrong AUTH string, is not ready: never a silent plain-text or anonymous fallback', async (t) => {
  const tls = certificates(t)
  const other = certificates(t)
  const redis = await startRedis(t, { tls, password: 'right' })
  const untrusted = await startStack(t, { env: { REDIS_URL: redis.url, REDIS_TLS_CA_FILE: other.ca } })
  assert.equal((await untrusted.app.inject({ url: '/readyz' })).statusCode, 503)
  const wrongAuth = await startStack(t, { env: { REDIS_URL: redis.url.replace(':right@', ':wrong@'), REDIS_TLS_CA_FILE: tls.ca } })
  assert.equal((await wrongAuth.app.inject({ url: '/readyz' })).statusCode, 503)
  const keyed = await wrongAuth.app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'idempotency-key': 'k' } })
  assert.equal(keyed.json().error.code, 'idempotency_unavailable')
})
