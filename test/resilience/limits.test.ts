import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { ServiceError } from '../../src/errors.ts'
import { isRetryable } from '../../src/resilience/guard.ts'
import { createLimiter } from '../../src/resilience/limiter.ts'
import { createRetryBudget } from '../../src/resilience/retry-budget.ts'
import { startSimulator } from '../../src/simulator/server.ts'
import { liveEnv } from '../spawn.ts'

test('the retry budget allows retries up to 10 % of requests in the window, with a floor, and forgets old buckets', () => {
  let now = 0
  const budget = createRetryBudget({ ratio: 0.1, windowMs: 10_000, minPerWindow: 3, now: () => now })
  for (let i = 0; i < 100; i++) budget.recordRequest()
  const granted = Array.from({ length: 20 }, () => budget.tryRetry()).filter(Boolean).length
  assert.equal(granted, 10)

  now = 11_000
  for (let i = 0; i < 5; i++) budget.recordRequest()
  assert.deepEqual(Array.from({ length: 5 }, () => budget.tryRetry()), [true, true, true, false, false], 'the floor of 3 once the window has moved on')
})

test('the limiter runs at most maxInFlight, queues up to maxQueued, and refuses beyond at once', async () => {
  const limiter = createLimiter({ maxInFlight: 2, maxQueued: 1, upstream: 'llm' })
  let running = 0
  let peak = 0
  const task = () => limiter.run(async () => {
    peak = Math.max(peak, ++running)
    await sleep(20)
    running--
  })
  const accepted = [task(), task(), task()]
  await assert.rejects(task(), (error: ServiceError) => error.code === 'overloaded' && error.headers['retry-after'] === '1')
  await Promise.all(accepted)
  assert.equal(peak, 2)
  assert.deepEqual(limiter.stats(), { running: 0, queued: 0 })
})

test('a queued call whose caller leaves is removed from the queue', async () => {
  const limiter = createLimiter({ maxInFlight: 1, maxQueued: 5, upstream: 'llm' })
  const blocker = limiter.run(() => sleep(30))
  const controller = new AbortController()
  const queued = limiter.run(async () => 'ran', controller.signal)
  controller.abort(new Error('gone'))
  await assert.rejects(queued, /gone/)
  assert.equal(limiter.stats().queued, 0)
  await blocker
})

test('only outcomes without a usable answer, per-attempt timeouts, rate limits and 5xx are retryable', () => {
  const cause = (code: string) => ({ cause: Object.assign(new Error(code), { code }) })
  const status = (value: number, extra: object = {}) => ({ details: { upstream: 'llm', status: value, ...extra } })
  const cases: Array<[ServiceError, boolean]> = [
    [new ServiceError('upstream_unavailable', cause('ECONNREFUSED')), true],
    [new ServiceError('upstream_unavailable', cause('UND_ERR_SOCKET')), true],
    [new ServiceError('upstream_unavailable', cause('ENOTFOUND')), false],
    [new ServiceError('upstream_timeout', cause('UND_ERR_CONNECT_TIMEOUT')), true],
    [new ServiceError('upstream_timeout', cause('UND_ERR_HEADERS_TIMEOUT')), true],
    [new ServiceError('upstream_timeout', cause('UND_ERR_BODY_TIMEOUT')), true],
    [new ServiceError('upstream_timeout'), false],
    [new ServiceError('upstream_response_too_large'), false],
    [new ServiceError('upstream_error', status(429)), true],
    [new ServiceError('upstream_error', status(429, { quotaExhausted: true })), false],
    [new ServiceError('upstream_error', status(503)), true],
    [new ServiceError('upstream_error', status(400)), false],
    [new ServiceError('upstream_bad_response'), true]
  ]
  for (const [error, expected] of cases) assert.equal(isRetryable(error), expected, `${error.code} ${JSON.stringify(error.details)} ${String((error.cause as Error | undefined)?.message)}`)
})

// The calls of one request share an origin (on api.openai.com the LLM and the images do): six
// sections and the image of a long post are seven calls at once on one origin. Every request the
// instance admits must fit the per-origin queue, however few connections it has.
test('MAX_CONCURRENT_REQUESTS long posts at once, all calls on one origin with few connections: every one is 200, none refused by the per-origin limit', async (t) => {
  const simulator = await startSimulator()
  const config = loadConfig({ LOG_LEVEL: 'silent', ...liveEnv(simulator.origin), MAX_CONCURRENT_REQUESTS: '100', UPSTREAM_CONNECTIONS: '4' })
  const app = await buildApp({ config, upstreams: config.upstreams! })
  await app.ready()
  t.after(async () => {
    await app.close()
    await simulator.close()
  })
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) =>
    app.inject({ method: 'POST', url: '/generate', payload: { topic: `connection pooling, part ${i}`, length: 'long' } })))
  const statuses: Record<string, number> = {}
  for (const answer of answers) {
    const key = answer.statusCode === 200 ? '200' : `${answer.statusCode} ${answer.json().error.code}`
    statuses[key] = (statuses[key] ?? 0) + 1
  }
  assert.deepEqual(statuses, { 200: 100 })
  assert.equal(answers.filter((answer) => answer.json().warnings.length > 0).length, 0, 'no optional step was refused either')
  assert.ok(simulator.stats().connections.peak <= 4, `the upstream saw ${simulator.stats().connections.peak} connections at most, within UPSTREAM_CONNECTIONS`)
})
