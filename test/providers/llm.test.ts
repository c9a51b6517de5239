import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { z } from 'zod'
import { planResponseFormat } from '../../src/providers/llm.ts'
import { streamCompletion } from '../../src/providers/llm-stream.ts'
import { startSimulator } from '../../src/simulator/server.ts'
import { realPace } from '../../src/simulator/stream.ts'
import { mockUpstream, UPSTREAM_ORIGIN } from '../helper.ts'
import { Agent } from 'undici'

const target = { baseUrl: `${UPSTREAM_ORIGIN}/v1/`, apiKey: 'sk-test', model: 'gpt-test', provider: 'openai' }
const messages = [{ role: 'user' as const, content: 'hello' }]
const timeouts = { firstTokenMs: 1_000, idleMs: 1_000 }
const sse = (...events: unknown[]) => events.map((event) => `data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`).join('')
const delta = (content: string, finish: string | null = null) => ({ choices: [{ index: 0, delta: { content }, finish_reason: finish }] })
const usage = { choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } }

test('streamCompletion posts stream: true with include_usage, and reads the deltas, the finish_reason and the usage chunk', async (t) => {
  const { agent, pool } = mockUpstream(t)
  let sent: Record<string, unknown> = {}
  let headers: Record<string, string> = {}
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply((options) => {
    sent = JSON.parse(String(options.body))
    headers = options.headers as Record<string, string>
    return { statusCode: 200, data: sse(delta('a '), delta('section'), delta('', 'stop'), usage, '[DONE]'), responseOptions: { headers: { 'content-type': 'text/event-stream' } } }
  })
  const deltas: string[] = []

  const answer = await streamCompletion({ dispatcher: agent, target, maxResponseBytes: 1e6, timeouts, onDelta: (text) => deltas.push(text) }, messages)

  // The deltas went to onDelta, whose caller keeps them; the answer does not hold a second copy.
  assert.deepEqual({ content: answer.content, finishReason: answer.finishReason, usage: answer.usage }, { content: '', finishReason: 'stop', usage: { promptTokens: 11, completionTokens: 7, totalTokens: 18 } })
  assert.deepEqual(deltas, ['a ', 'section'])
  assert.deepEqual(sent, { model: 'gpt-test', messages, stream: true, stream_options: { include_usage: true } })
  assert.equal(headers.authorization, 'Bearer sk-test')
})

test('the plan\'s response_format is a strict json_schema: closed objects, no lengths or array sizes', () => {
  const schema = z.object({ title: z.string().min(1).max(70).describe('The title.'), tags: z.array(z.string()).min(1) })
  assert.deepEqual(planResponseFormat(schema), {
    type: 'json_schema',
    json_schema: {
      name: 'post_plan',
      strict: true,
      schema: { type: 'object', properties: { title: { type: 'string', description: 'The title.' }, tags: { type: 'array', items: { type: 'string' } } }, required: ['title', 'tags'], additionalProperties: false }
    }
  })
})

for (const [name, body, code] of [
  ['a stream that ends without [DONE] or a finish_reason', sse(delta('half a sec')), 'upstream_bad_response'],
  ['an in-band error object', sse(delta('half'), { error: { message: 'overloaded', type: 'server_error' } }), 'upstream_error'],
  ['a chunk that is not JSON', sse(delta('half'), '{"choices": [{"del'), 'upstream_bad_response'],
  ['an empty completion', sse(delta('', 'stop'), usage, '[DONE]'), 'upstream_bad_response']
] as const) {
  test(`${name} is ${code}, never a short answer that looks complete`, async (t) => {
    const { agent, pool } = mockUpstream(t)
    pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(200, body, { headers: { 'content-type': 'text/event-stream' } })
    await assert.rejects(streamCompletion({ dispatcher: agent, target, maxResponseBytes: 1e6, timeouts }, messages), { code })
  })
}

test('an error status is upstream_error with its status, and a parse that rejects the content is upstream_bad_response', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(503, { error: { message: 'busy' } }, { headers: { 'retry-after': '2' } })
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(200, sse(delta('not json', 'stop'), '[DONE]'))
  const call = { dispatcher: agent, target, maxResponseBytes: 1e6, timeouts }
  await assert.rejects(streamCompletion(call, messages), { code: 'upstream_error', details: { upstream: 'llm', status: 503, retryAfterMs: 2000 } })
  await assert.rejects(streamCompletion(call, messages, {}, (content) => z.object({ title: z.string() }).parse(JSON.parse(content))), (error: Error) => error.name === 'SyntaxError' || /upstream_bad_response/.test(String((error as { code?: string }).code)))
})

test('two timers instead of one body timeout: a section that keeps writing runs past both, one that stalls is cut at the idle limit', async (t) => {
  // 40 tokens/s for ~45 tokens: about 1 s of writing, far past the 500 ms limits, in steps of 20 ms.
  const simulator = await startSimulator({ pace: realPace(0.05, 2) })
  t.after(() => simulator.close())
  const dispatcher = new Agent()
  t.after(() => dispatcher.close())
  const sim = { baseUrl: `${simulator.origin}/v1`, apiKey: 'k', model: 'm', provider: 'simulator' }
  const section = [{ role: 'user' as const, content: '<section>{"brief":{"topic":"kites"},"words":30}</section>' }]
  const short = { firstTokenMs: 500, idleMs: 500 }

  const started = performance.now()
  const written = await streamCompletion({ dispatcher, target: sim, maxResponseBytes: 1e6, timeouts: short }, section)
  assert.ok(performance.now() - started > 500, 'it wrote for longer than either limit')
  assert.equal(written.finishReason, 'stop')

  simulator.setFault('llm', { stall: true })
  // Timed from the last text that came: the limit counts silence, not time since some check. The
  // stall comes ~460 ms into the text, so a timer that only looked every 400 ms would cut ~740 ms
  // after it.
  let lastDeltaAt = performance.now()
  const onDelta = () => { lastDeltaAt = performance.now() }
  const idle = { firstTokenMs: 500, idleMs: 400 }
  await assert.rejects(streamCompletion({ dispatcher, target: sim, maxResponseBytes: 1e6, timeouts: idle, onDelta }, section), { code: 'upstream_timeout' })
  const silentMs = performance.now() - lastDeltaAt
  assert.ok(silentMs >= 400 - 5 && silentMs < 400 + 150, `cut ${silentMs.toFixed(0)} ms after the last text, at the idle limit`)
  await sleep(50)
  assert.equal(simulator.stats().inFlight, 0, 'the stalled stream was closed')
})

test('a call whose caller leaves while it waits for a connection fails at once, and is never sent', async (t) => {
  const simulator = await startSimulator({ pace: realPace(0.05, 2) })
  t.after(() => simulator.close())
  // One HTTP/1.1 connection: the second call waits in undici's queue while the first writes.
  const dispatcher = new Agent({ connections: 1 })
  t.after(() => dispatcher.close())
  const sim = { baseUrl: `${simulator.origin}/v1`, apiKey: 'k', model: 'm', provider: 'simulator' }
  const section = [{ role: 'user' as const, content: '<section>{"brief":{"topic":"kites"},"words":30}</section>' }]
  const writing = streamCompletion({ dispatcher, target: sim, maxResponseBytes: 1e6, timeouts }, section)
  const caller = new AbortController()
  const queued = streamCompletion({ dispatcher, target: sim, maxResponseBytes: 1e6, timeouts, signal: caller.signal }, section)
  await sleep(50)
  const left = new Error('the caller left')
  const leftAt = performance.now()
  caller.abort(left)
  await assert.rejects(queued, (error) => error === left)
  assert.ok(performance.now() - leftAt < 50, 'the call did not wait for the connection to fail')
  assert.equal((await writing).finishReason, 'stop')
  await sleep(50)
  assert.equal(simulator.stats().requests.llm, 1, 'the queued call never reached the upstream')
})
