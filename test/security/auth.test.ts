import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { GOOD_BRIEF, startStack } from '../helper.ts'
import { AUDIENCE, CALLER, googleKeys } from './google-keys.ts'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

test('api-key mode: a missing or wrong key is 401, a right one (Bearer or X-Api-Key) is served', async (t) => {
  const { app } = await startStack(t, { env: { AUTH_MODE: 'api-key', AUTH_API_KEYS: `blog:${sha256('k-blog-123')},shop:${sha256('k-shop-456')}` } })
  const post = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers })

  const missing = await post({})
  assert.equal(missing.statusCode, 401)
  assert.equal(missing.json().error.code, 'unauthenticated')
  assert.equal(missing.headers['www-authenticate'], 'Bearer')
  assert.equal((await post({ authorization: 'Bearer k-blog-12' })).statusCode, 401)
  assert.equal((await post({ authorization: 'Bearer k-blog-123' })).statusCode, 200)
  assert.equal((await post({ 'x-api-key': 'k-shop-456' })).statusCode, 200)
  assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'probes need no key')
})

test('google-id-token mode: valid and allowed is served; expired, wrong audience, alg none and no token are 401; not allowed is 403', async (t) => {
  const keys = await googleKeys(t)
  const { app } = await startStack(t, {
    env: { AUTH_MODE: 'google-id-token', AUTH_AUDIENCE: AUDIENCE, AUTH_ALLOWED_SERVICE_ACCOUNTS: CALLER, AUTH_JWKS_URL: keys.url }
  })
  const post = (token?: string) => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  const unsigned = [{ alg: 'none', typ: 'JWT' }, { iss: 'https://accounts.google.com', aud: AUDIENCE, email: CALLER, email_verified: true, exp: Math.floor(Date.now() / 1000) + 300 }]
    .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url')).join('.') + '.'

  assert.equal((await post(await keys.sign({}))).statusCode, 200)
  for (const [name, token] of [
    ['expired', await keys.sign({}, { expiresIn: Math.floor(Date.now() / 1000) - 60 })],
    ['wrong audience', await keys.sign({}, { audience: 'https://someone-else.example' })],
    ['alg none', unsigned],
    ['garbage', 'not.a.token'],
    ['missing', undefined]
  ] as const) {
    const response = await post(token)
    assert.equal(response.statusCode, 401, name)
    assert.equal(response.json().error.code, 'unauthenticated', name)
  }
  const stranger = await post(await keys.sign({ email: 'someone@else.iam.gserviceaccount.com' }))
  assert.equal(stranger.statusCode, 403)
  assert.equal(stranger.json().error.code, 'forbidden')
  assert.equal(keys.fetches(), 1, 'Google\'s keys fetched once, through the pool, and cached')
})

test('per-caller limits: requests a minute, then 429 with Retry-After; another caller is unaffected', async (t) => {
  const { app } = await startStack(t, { env: { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha256('key-a')},b:${sha256('key-b')}`, RATE_LIMIT_PER_MINUTE: '3' } })
  const post = (key: string) => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'x-api-key': key } })

  const statuses = []
  for (let i = 0; i < 4; i++) statuses.push((await post('key-a')).statusCode)
  const limited = await post('key-a')

  assert.deepEqual(statuses, [200, 200, 200, 429])
  assert.equal(limited.json().error.code, 'rate_limited')
  assert.ok(Number(limited.headers['retry-after']) > 0)
  assert.equal((await post('key-b')).statusCode, 200)
})

test('per-caller limits: concurrent generations beyond the cap are 429', async (t) => {
  const slow = { fixedMs: 200, jitterMs: 0 }
  const { app } = await startStack(t, {
    env: { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha256('key-a')}`, RATE_LIMIT_CONCURRENT: '2' },
    simulator: { latency: { llm: slow } }
  })
  const post = () => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'x-api-key': 'key-a' } })

  const statuses = (await Promise.all([post(), post(), post()])).map((r) => r.statusCode).sort()

  assert.deepEqual(statuses, [200, 200, 429])
})
