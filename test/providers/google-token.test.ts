import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTokenSource } from '../../src/providers/google-token.ts'
import { mockUpstream } from '../helper.ts'

const PATH = '/computeMetadata/v1/instance/service-accounts/default/token'

function metadata (t: import('node:test').TestContext) {
  const { agent } = mockUpstream(t)
  return { agent, pool: agent.get('http://metadata.test:8080') }
}

test('the token comes from the metadata server with Metadata-Flavor: Google, through the given dispatcher', async (t) => {
  const { agent, pool } = metadata(t)
  let flavor: unknown
  pool.intercept({ path: PATH, method: 'GET' }).reply((options) => {
    flavor = (options.headers as Record<string, string>)['metadata-flavor']
    return { statusCode: 200, data: { access_token: 'ya29.first', expires_in: 3599, token_type: 'Bearer' } }
  })

  const token = createTokenSource({ dispatcher: () => agent, metadataHost: 'metadata.test:8080' })

  assert.equal(await token(), 'ya29.first')
  assert.equal(flavor, 'Google')
})

test('concurrent callers share one fetch, and the token is cached until shortly before it expires', async (t) => {
  const { agent, pool } = metadata(t)
  pool.intercept({ path: PATH, method: 'GET' }).reply(200, { access_token: 'ya29.first', expires_in: 3600, token_type: 'Bearer' })
  pool.intercept({ path: PATH, method: 'GET' }).reply(200, { access_token: 'ya29.second', expires_in: 3600, token_type: 'Bearer' })
  let now = 0
  const token = createTokenSource({ dispatcher: () => agent, metadataHost: 'metadata.test:8080', now: () => now })

  const first = await Promise.all(Array.from({ length: 20 }, () => token()))
  assert.deepEqual(new Set(first), new Set(['ya29.first']), 'twenty callers, one request')

  now = 54 * 60_000
  assert.equal(await token(), 'ya29.first', 'still cached at 54 minutes')
  now = 56 * 60_000
  assert.equal(await token(), 'ya29.second', 'refreshed inside the five-minute margin')
})

test('a failed fetch is an upstream error and is retried by the next caller, not cached', async (t) => {
  const { agent, pool } = metadata(t)
  pool.intercept({ path: PATH, method: 'GET' }).reply(503, 'unavailable')
  pool.intercept({ path: PATH, method: 'GET' }).reply(200, { access_token: 'ya29.ok', expires_in: 3600, token_type: 'Bearer' })
  const token = createTokenSource({ dispatcher: () => agent, metadataHost: 'metadata.test:8080' })

  await assert.rejects(token(), { code: 'upstream_error', details: { upstream: 'metadata', status: 503 } })
  assert.equal(await token(), 'ya29.ok')
})
