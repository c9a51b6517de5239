import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runLeakGuard } from './guard.ts'

test('the service passes the leak guard: bounded connections, fds back to baseline, flat heap, nothing open after close', async (t) => {
  const { violations, statuses } = await runLeakGuard(t, 'service')
  assert.deepEqual(statuses, { 200: 2_000 })
  assert.deepEqual(violations, [])
})

test('the leaky variant (a client per call, never closed) fails the same guard', async (t) => {
  const { violations, statuses } = await runLeakGuard(t, 'leaky')
  assert.deepEqual(statuses, { 200: 2_000 })
  const broken = violations.map((violation) => violation.split(':')[0])
  for (const limit of ['connections', 'fds', 'heap', 'close']) assert.ok(broken.includes(limit), `the guard caught ${limit}: ${violations.join('; ')}`)
})
