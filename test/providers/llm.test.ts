import assert from 'node:assert/strict'
import { test } from 'node:test'
import { z } from 'zod'
import { ServiceError } from '../../src/errors.ts'
import { complete, completeStructured } from '../../src/providers/llm.ts'
import { capture, mockUpstream, UPSTREAM_ORIGIN } from '../helper.ts'

const target = { baseUrl: `${UPSTREAM_ORIGIN}/v1/`, apiKey: 'sk-test', model: 'gpt-test' }
const completion = (content: string) => ({
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }
})
const messages = [{ role: 'user' as const, content: 'hello' }]

test('complete posts an OpenAI Chat Completions request to the base URL path and reads content and usage', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, completion('a draft'))
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(reply)

  const answer = await complete({ dispatcher: agent, target, maxResponseBytes: 1e6 }, messages)

  assert.deepEqual(answer, { content: 'a draft', usage: { promptTokens: 11, completionTokens: 7, totalTokens: 18 } })
  const [request] = seen
  assert.equal(request?.headers.authorization, 'Bearer sk-test')
  assert.equal(request?.headers['content-type'], 'application/json')
  assert.deepEqual(request?.body, { model: 'gpt-test', messages })
})

test('completeStructured sends a strict json_schema response_format and validates the answer with zod', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, completion(JSON.stringify({ title: 'T' })))
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(reply)

  const schema = z.strictObject({ title: z.string().min(1).max(70).describe('The title.') })
  const { value } = await completeStructured({ dispatcher: agent, target, maxResponseBytes: 1e6 }, messages, 'post', schema)

  assert.deepEqual(value, { title: 'T' })
  assert.deepEqual(seen[0]?.body.response_format, {
    type: 'json_schema',
    json_schema: {
      name: 'post',
      strict: true,
      // String lengths are not allowed in strict mode: zod checks them on the answer instead.
      schema: { type: 'object', properties: { title: { type: 'string', description: 'The title.' } }, required: ['title'], additionalProperties: false }
    }
  })
})

test('a structured answer that is not JSON, or has the wrong fields, is upstream_bad_response', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(200, completion('not json'))
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(200, completion('{"headline":"T"}'))
  const schema = z.strictObject({ title: z.string() })
  const call = { dispatcher: agent, target, maxResponseBytes: 1e6 }

  for (let i = 0; i < 2; i++) {
    await assert.rejects(completeStructured(call, messages, 'post', schema), { code: 'upstream_bad_response', statusCode: 502 })
  }
})

test('error statuses, wrong shapes and invalid JSON map into the catalogue', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const call = { dispatcher: agent, target, maxResponseBytes: 1e6 }
  const path = '/v1/chat/completions'
  pool.intercept({ path, method: 'POST' }).reply(503, { error: { message: 'overloaded' } })
  pool.intercept({ path, method: 'POST' }).reply(200, { choices: [] })
  pool.intercept({ path, method: 'POST' }).reply(200, '{"choices": [')
  pool.intercept({ path, method: 'POST' }).reply(200, { choices: [{ message: { content: null } }], usage: {} })

  await assert.rejects(complete(call, messages), (error: ServiceError) => {
    assert.equal(error.code, 'upstream_error')
    assert.deepEqual(error.details, { upstream: 'llm', status: 503 })
    return true
  })
  for (let i = 0; i < 3; i++) {
    await assert.rejects(complete(call, messages), { code: 'upstream_bad_response', statusCode: 502 })
  }
})

test('a connection error is upstream_unavailable and keeps its cause', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).replyWithError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))

  await assert.rejects(complete({ dispatcher: agent, target, maxResponseBytes: 1e6 }, messages), (error: ServiceError) => {
    assert.equal(error.code, 'upstream_unavailable')
    assert.equal((error.cause as { code?: string }).code, 'ECONNREFUSED')
    return true
  })
})

test('an answer above maxResponseBytes is upstream_response_too_large', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(200, completion('x'.repeat(5000)))

  await assert.rejects(complete({ dispatcher: agent, target, maxResponseBytes: 1000 }, messages), { code: 'upstream_response_too_large' })
})

test('without an API key the service account token is sent as the bearer (Vertex AI)', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, completion('a draft'))
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(reply)

  await complete({ dispatcher: agent, target: { ...target, apiKey: undefined }, maxResponseBytes: 1e6, token: async () => 'ya29.token' }, messages)

  assert.equal(seen[0]?.headers.authorization, 'Bearer ya29.token')
})

test('the completion cap is sent as max_completion_tokens', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, completion('a draft'))
  pool.intercept({ path: '/v1/chat/completions', method: 'POST' }).reply(reply)

  await complete({ dispatcher: agent, target: { ...target, maxCompletionTokens: 512 }, maxResponseBytes: 1e6 }, messages)

  assert.equal(seen[0]?.body.max_completion_tokens, 512)
})
