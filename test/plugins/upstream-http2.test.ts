import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF, testConfig } from '../helper.ts'
import { liveEnv } from '../spawn.ts'
import { throwawayCertificates } from '../tls.ts'

// Real providers answer over HTTPS and offer HTTP/2; so does the simulator with a certificate.
// Over HTTP/2 one TCP connection carries many calls, so "connections per origin" no longer bounds
// calls: the guard here bounds both, sockets by UPSTREAM_CONNECTIONS and calls on them by
// UPSTREAM_CONNECTIONS × UPSTREAM_HTTP2_STREAMS.
const CONNECTIONS = 2
const STREAMS = 6
const CALLERS = 12
const LATENCY = { fixedMs: 60, jitterMs: 0 }

async function until (check: () => boolean, timeoutMs = 2_000) {
  const deadline = performance.now() + timeoutMs
  while (!check() && performance.now() < deadline) await sleep(10)
  return check()
}

// Live providers that happen to be the simulator: every call is HTTPS, Natural Language with an API
// key (the simulator mode would fetch a token from the metadata server, which is plain HTTP).
async function tlsStack (t: TestContext, env: Record<string, string>) {
  const certificates = throwawayCertificates('upstream', (remove) => t.after(remove))
  const simulator = await startSimulator({ tls: certificates.pem, latency: { llm: LATENCY, image: LATENCY, sentiment: LATENCY, entities: LATENCY } })
  t.after(() => simulator.close())
  const config = testConfig({ ...liveEnv(simulator.origin), UPSTREAM_TLS_CA_FILE: certificates.ca, UPSTREAM_CONNECTIONS: String(CONNECTIONS), ...env })
  const app = await buildApp({ config, upstreams: config.upstreams! })
  t.after(() => app.close())
  await app.ready()
  return { app, simulator }
}

async function posts (app: FastifyInstance) {
  const answers = await Promise.all(Array.from({ length: CALLERS }, () => app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })))
  // Every step answered: a post with a degraded step would carry a warning.
  return answers.map((answer) => `${answer.statusCode} ${JSON.stringify(answer.json().warnings ?? [])}`)
}

test(`over HTTP/2, ${CALLERS} posts share ${CONNECTIONS} connections with at most ${STREAMS} calls on each, and none stay open after close`, async (t) => {
  const { app, simulator } = await tlsStack(t, { UPSTREAM_HTTP2: 'true', UPSTREAM_HTTP2_STREAMS: String(STREAMS) })
  assert.deepEqual(await posts(app), Array(CALLERS).fill('200 []'))

  const stats = simulator.stats()
  t.diagnostic(`protocols ${JSON.stringify(stats.protocols)}; connections peak ${stats.connections.peak}, accepted ${stats.connections.accepted}; calls in flight peak ${stats.peakInFlight}, ${stats.peakStreamsPerConnection} on one connection`)
  assert.equal(stats.protocols['http/1.1'], 0, 'every call went over HTTP/2')
  assert.ok(stats.protocols.h2 >= CALLERS * 8, `${stats.protocols.h2} calls`)
  assert.ok(stats.connections.accepted <= CONNECTIONS, `no connection was opened twice: ${stats.connections.accepted} accepted`)
  assert.ok(stats.connections.peak <= CONNECTIONS, `connections: peak ${stats.connections.peak} <= ${CONNECTIONS}`)
  assert.ok(stats.peakStreamsPerConnection <= STREAMS, `calls on one connection: peak ${stats.peakStreamsPerConnection} <= ${STREAMS}`)
  assert.ok(stats.peakInFlight <= CONNECTIONS * STREAMS, `calls in flight: peak ${stats.peakInFlight} <= ${CONNECTIONS} × ${STREAMS}`)
  // The bound was reached, so the test would see a pool that let more through.
  assert.ok(stats.peakInFlight > STREAMS, `the load multiplexed: ${stats.peakInFlight} calls at once`)

  await app.close()
  assert.ok(await until(() => simulator.stats().connections.open === 0), `open after close: ${simulator.stats().connections.open}`)
})

test('by default (UPSTREAM_HTTP2=false) HTTPS upstreams stay on HTTP/1.1, one call per connection', async (t) => {
  const { app, simulator } = await tlsStack(t, {})
  assert.deepEqual(await posts(app), Array(CALLERS).fill('200 []'))

  const stats = simulator.stats()
  assert.equal(stats.protocols.h2, 0, 'no call went over HTTP/2')
  assert.ok(stats.connections.peak <= CONNECTIONS, `connections: peak ${stats.connections.peak} <= ${CONNECTIONS}`)
  assert.ok(stats.peakInFlight <= CONNECTIONS, `calls in flight: peak ${stats.peakInFlight} <= ${CONNECTIONS}`)
})

test('an upstream certificate from an unknown CA fails the post with a documented error, never a 500', async (t) => {
  const other = throwawayCertificates('other', (remove) => t.after(remove))
  const { app, simulator } = await tlsStack(t, { UPSTREAM_TLS_CA_FILE: other.ca })
  const answer = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })
  t.diagnostic(`${answer.statusCode} ${answer.body}`)
  assert.equal(answer.statusCode, 502)
  assert.equal(answer.json().error.code, 'upstream_unavailable')
  assert.equal(simulator.stats().requests.llm, 0, 'no call was answered over the untrusted connection')
})
