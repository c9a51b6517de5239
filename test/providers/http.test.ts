import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Agent } from 'undici'
import { z } from 'zod'
import { postJson } from '../../src/providers/http.ts'
import { startSimulator } from '../../src/simulator/server.ts'

// Real sockets: with one connection allowed, a body left unread would stall every later call on
// that socket, and a destroyed socket would show up as a new accepted connection.
test('error answers are drained so the one pooled socket is reused for the next call', async (t) => {
  const simulator = await startSimulator({ faults: { sentiment: { status: 503 } } })
  t.after(() => simulator.close())
  const agent = new Agent({ connections: 1, headersTimeout: 2_000, bodyTimeout: 2_000 })
  t.after(() => agent.close())

  for (let i = 0; i < 20; i++) {
    await assert.rejects(postJson({
      dispatcher: agent,
      upstream: 'language',
      url: `${simulator.origin}/v1/documents:analyzeSentiment`,
      body: { document: { type: 'PLAIN_TEXT', content: 'x' } },
      schema: z.unknown(),
      maxResponseBytes: 1e6
    }), { code: 'upstream_error' })
  }

  assert.equal(simulator.stats().requests.sentiment, 20)
  assert.equal(simulator.stats().connections.accepted, 1)
})

test('an oversized answer is cut off at the limit instead of being buffered whole', async (t) => {
  const simulator = await startSimulator({ faults: { llm: { oversizeBytes: 50 * 1024 * 1024 } } })
  t.after(() => simulator.close())
  const agent = new Agent({ connections: 1 })
  t.after(() => agent.close())
  const before = process.memoryUsage().rss

  await assert.rejects(postJson({
    dispatcher: agent,
    upstream: 'llm',
    url: `${simulator.origin}/v1/chat/completions`,
    headers: { authorization: 'Bearer x' },
    body: { model: 'm', messages: [{ role: 'user', content: 'x' }] },
    schema: z.unknown(),
    maxResponseBytes: 1024 * 1024
  }), { code: 'upstream_response_too_large' })

  assert.ok(process.memoryUsage().rss - before < 40 * 1024 * 1024, 'RSS grew by less than the 50 MB answer')
})
