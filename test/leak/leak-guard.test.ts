import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CHAOS_KINDS } from '../../src/simulator/faults.ts'
import { runLeakGuard } from './guard.ts'

test('the service passes the leak guard: bounded connections, fds back to baseline, flat heap, nothing open after close', async (t) => {
  const { violations, statuses } = await runLeakGuard(t, 'service')
  assert.deepEqual(statuses, { 200: 2_000 })
  assert.deepEqual(violations, [])
})

test('streaming (Accept: text/event-stream), the service passes the same leak guard', async (t) => {
  const { violations, statuses } = await runLeakGuard(t, 'service', 1_000, 50, {}, {}, { accept: 'text/event-stream' })
  assert.deepEqual(statuses, { 200: 1_000 })
  assert.deepEqual(violations, [])
})

test('under a 20 % random fault rate on every upstream call, the service still passes the leak guard', async (t) => {
  // A hung call holds one of the 16 sockets until its 250 ms attempt timeout: 1,000 requests keep
  // the run near 15 s.
  const chaos = { rate: 0.2, kinds: CHAOS_KINDS, slowMs: 50 }
  const env = { REQUEST_TIMEOUT_MS: '3000', UPSTREAM_HEADERS_TIMEOUT_MS: '250', UPSTREAM_BODY_TIMEOUT_MS: '250', UPSTREAM_BACKOFF_BASE_MS: '20' }
  const { violations, statuses } = await runLeakGuard(t, 'service', 1_000, 50, { chaos }, env)
  assert.equal(statuses[500], undefined, 'no 500')
  assert.ok((statuses[200] ?? 0) >= 0.9 * 1_000, `posts answered 200: ${JSON.stringify(statuses)}`)
  assert.deepEqual(violations, [])
})

test('the leaky variant (a client per call, never closed) fails the same guard', async (t) => {
  const { violations, statuses } = await runLeakGuard(t, 'leaky')
  assert.deepEqual(statuses, { 200: 2_000 })
  const broken = violations.map((violation) => violation.split(':')[0])
  for (const limit of ['connections', 'fds', 'heap', 'close']) assert.ok(broken.includes(limit), `the guard caught ${limit}: ${violations.join('; ')}`)
})
