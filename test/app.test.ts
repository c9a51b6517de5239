import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildApp } from '../src/app.ts'
import { simulatorUpstreams } from '../src/config.ts'
import { startStack, testConfig } from './helper.ts'

test('GET /healthz answers without calling any upstream', async (t) => {
  const { app, simulator } = await startStack(t)

  const response = await app.inject({ method: 'GET', url: '/healthz' })

  assert.equal(response.statusCode, 200)
  assert.deepEqual(response.json(), { status: 'ok' })
  assert.equal(simulator.stats().connections.accepted, 0)
})

test('an unknown route is a 404 in the documented error shape', async (t) => {
  const { app } = await startStack(t)

  const response = await app.inject({ method: 'GET', url: '/nope?secret=1' })

  assert.equal(response.statusCode, 404)
  assert.deepEqual(response.json(), {
    error: { code: 'not_found', message: 'No route for GET /nope.' },
    requestId: response.headers['x-request-id']
  })
})

test('x-request-id is echoed when it is well-formed and generated when absent or hostile', async (t) => {
  const { app } = await startStack(t)

  const echoed = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } })
  const generated = await app.inject({ method: 'GET', url: '/healthz' })
  const hostile = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'a\u0000b<script>'.repeat(20) } })

  assert.equal(echoed.headers['x-request-id'], 'abc-123')
  assert.match(String(generated.headers['x-request-id']), /^[0-9a-f-]{36}$/)
  assert.match(String(hostile.headers['x-request-id']), /^[0-9a-f-]{36}$/)
})

test('an unexpected error is a 500 that carries neither a stack nor the internal message', async (t) => {
  const config = testConfig()
  const app = await buildApp({ config, upstreams: simulatorUpstreams(config, 'http://127.0.0.1:9') })
  t.after(() => app.close())
  app.get('/boom', async () => { throw new Error('internal detail: /etc/secret') })

  const response = await app.inject({ method: 'GET', url: '/boom' })

  assert.equal(response.statusCode, 500)
  assert.deepEqual(response.json(), {
    error: { code: 'internal_error', message: 'Something went wrong on our side.' },
    requestId: response.headers['x-request-id']
  })
  assert.doesNotMatch(response.body, /secret|at \w+ \(/)
})
