import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ServiceError } from '../../src/errors.ts'
import { createGuard } from '../../src/resilience/guard.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

test('50 requests with a 1 ms deadline, then 50 cut mid-call by a 20 ms one, open no breaker: the next ordinary request gets 200', async (t) => {
  const { app } = await startStack(t, { simulator: { latency: { llm: { fixedMs: 50, jitterMs: 0 } } } })
  const post = (headers: Record<string, string> = {}) => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers })

  for (const deadline of ['1', '20']) {
    const statuses = await Promise.all(Array.from({ length: 50 }, () => post({ 'x-request-timeout-ms': deadline }).then((r) => r.statusCode)))
    assert.deepEqual([...new Set(statuses)], [504])
  }

  assert.equal((await post()).statusCode, 200)
  assert.equal(app.guard.stats().upstreams.llm?.state, 'closed')
})

const GUARD = {
  maxAttempts: 3,
  backoffBaseMs: 1,
  backoffCapMs: 1,
  retryBudgetRatio: 0.3,
  retryBudgetMinPerSecond: 10,
  maxInFlight: 1_000,
  maxQueued: 0,
  breakerFailureRatio: 0.5,
  breakerMinVolume: 1_000_000,
  breakerConsecutiveFailures: 1_000_000,
  breakerOpenMs: 5_000,
  breakerHalfOpenProbes: 3
}
const failing = (status: number) => async () => { throw new ServiceError('upstream_error', { details: { upstream: 'x', status } }) }

test('retry budgets are per upstream kind: an image outage on the shared origin leaves the LLM its retries', async () => {
  const guard = createGuard(GUARD)
  const origin = 'https://api.openai.com'
  for (let i = 0; i < 200; i++) await guard.run(origin, { upstream: 'image' }, failing(503)).catch(() => {})
  assert.equal(guard.stats().upstreams.image!.attempts.retries, 100, 'the image spent its floor: 10 a second over 10 s')

  let tries = 0
  const value = await guard.run(origin, { upstream: 'llm' }, async () => {
    if (++tries === 1) throw new ServiceError('upstream_unavailable', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) })
    return 'ok'
  })
  assert.equal(value, 'ok', 'a single LLM reset a moment later is still retried')
})

test('the retry budget still bounds a storm: a dead upstream costs at most 30 % more calls past the floor', async () => {
  const guard = createGuard(GUARD)
  for (let i = 0; i < 2_000; i++) await guard.run('https://llm.example', { upstream: 'llm' }, failing(503)).catch(() => {})
  const { first, retries } = guard.stats().upstreams.llm!.attempts
  assert.equal(first, 2_000)
  assert.ok(retries <= Math.max(100, 0.3 * first), `${retries} retries for ${first} first attempts`)
  assert.ok(retries >= 0.29 * first, `the budget was used, not starved: ${retries}`)
})
