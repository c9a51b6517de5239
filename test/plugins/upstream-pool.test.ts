import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Agent } from 'undici'
import upstreamPool from '../../src/plugins/upstream-pool.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

const TOTAL = 2_000
const CONCURRENCY = 50
const CONNECTIONS = 8

async function until (check: () => boolean, timeoutMs = 2_000) {
  const deadline = performance.now() + timeoutMs
  while (!check() && performance.now() < deadline) await sleep(10)
  return check()
}

test(`after ${TOTAL} requests at concurrency ${CONCURRENCY}, the simulator never saw more than UPSTREAM_CONNECTIONS, and none after close`, async (t) => {
  const { app, simulator } = await startStack(t, { env: { UPSTREAM_CONNECTIONS: String(CONNECTIONS) } })

  let next = 0
  const statuses = new Map<number, number>()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < TOTAL) {
      next++
      const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
    }
  }))

  assert.deepEqual([...statuses], [[200, TOTAL]])
  const { connections } = simulator.stats()
  t.diagnostic(`upstream connections: peak ${connections.peak}, accepted ${connections.accepted}, limit ${CONNECTIONS}`)
  assert.ok(connections.peak <= CONNECTIONS, `peak ${connections.peak} <= ${CONNECTIONS}`)
  assert.ok(connections.peak > 1, 'the load did use the pool in parallel')
  assert.ok(connections.accepted <= CONNECTIONS * 2, `sockets were reused: ${connections.accepted} accepted for ${TOTAL * 5} calls`)

  await app.close()
  assert.ok(await until(() => simulator.stats().connections.open === 0), `open after close: ${simulator.stats().connections.open}`)
})

test('the pool exists only between onReady and onClose, and an injected dispatcher is left open', async (t) => {
  const injected = new Agent()
  t.after(() => injected.close())
  const app = Fastify()
  await app.register(upstreamPool, { connections: 1, connectTimeoutMs: 1, headersTimeoutMs: 1, bodyTimeoutMs: 1, keepAliveTimeoutMs: 1, http2: true, http2Streams: 100, caFile: undefined, dispatcher: injected })

  await app.ready()
  assert.equal(app.upstream, injected)
  await app.close()
  assert.equal(injected.closed, false)
})

test('the upstream decorator refuses use before onReady', async () => {
  const app = Fastify()
  await app.register(upstreamPool, { connections: 1, connectTimeoutMs: 1, headersTimeoutMs: 1, bodyTimeoutMs: 1, keepAliveTimeoutMs: 1, http2: true, http2Streams: 100, caFile: undefined })
  await app.after()
  assert.throws(() => app.upstream, /not ready yet/)
  await app.ready()
  assert.equal(typeof app.upstream.request, 'function')
  await app.close()
  assert.equal((app.upstream as Agent).closed, true)
})
