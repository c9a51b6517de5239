import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startStack } from '../helper.ts'

const cases: Array<{ name: string, payload: string, headers?: Record<string, string>, status: number, code: string, paths?: string[] }> = [
  { name: 'a missing topic', payload: '{}', status: 400, code: 'invalid_request', paths: ['body.topic'] },
  { name: 'a topic that is too short once trimmed', payload: '{"topic":"  a  "}', status: 400, code: 'invalid_request', paths: ['body.topic'] },
  { name: 'a wrong-typed field', payload: '{"topic":"valid topic","image":"yes","keywords":"a"}', status: 400, code: 'invalid_request', paths: ['body.image', 'body.keywords'] },
  { name: 'an unknown tone', payload: '{"topic":"valid topic","tone":"angry"}', status: 400, code: 'invalid_request', paths: ['body.tone'] },
  { name: 'eleven keywords', payload: JSON.stringify({ topic: 'valid topic', keywords: Array(11).fill('k') }), status: 400, code: 'invalid_request', paths: ['body.keywords'] },
  { name: 'a language that is not a BCP-47 tag', payload: '{"topic":"valid topic","language":"english please"}', status: 400, code: 'invalid_request', paths: ['body.language'] },
  { name: 'an unknown field', payload: '{"topic":"valid topic","temperature":2}', status: 400, code: 'invalid_request', paths: ['body'] },
  { name: 'a __proto__ payload', payload: '{"topic":"valid topic","__proto__":{"admin":true}}', status: 400, code: 'invalid_request' },
  { name: 'a constructor.prototype payload', payload: '{"topic":"valid topic","constructor":{"prototype":{"admin":true}}}', status: 400, code: 'invalid_request' },
  { name: 'a JSON array body', payload: '[1,2]', status: 400, code: 'invalid_request', paths: ['body'] },
  { name: 'malformed JSON', payload: '{"topic": "valid', status: 400, code: 'invalid_request' },
  { name: 'an empty JSON body', payload: '', status: 400, code: 'invalid_request' },
  { name: 'a text/plain body', payload: 'write about pools', headers: { 'content-type': 'text/plain' }, status: 415, code: 'unsupported_media_type' },
  { name: 'a form body', payload: 'topic=pools', headers: { 'content-type': 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported_media_type' },
  { name: 'a body over the 64 KiB limit', payload: JSON.stringify({ topic: 'x'.repeat(70 * 1024) }), status: 413, code: 'payload_too_large' }
]

for (const { name, payload, headers, status, code, paths } of cases) {
  test(`${name} gets ${status} ${code} in the documented shape, and no upstream is called`, async (t) => {
    const { app, simulator } = await startStack(t)

    const response = await app.inject({
      method: 'POST', url: '/generate', payload, headers: { 'content-type': 'application/json', ...headers }
    })

    assert.equal(response.statusCode, status)
    const body = response.json()
    assert.deepEqual(Object.keys(body).sort(), ['error', 'requestId'])
    assert.equal(body.error.code, code)
    assert.equal(typeof body.error.message, 'string')
    assert.equal(body.requestId, response.headers['x-request-id'])
    if (paths !== undefined) {
      assert.deepEqual([...new Set(body.error.details.map((d: { path: string }) => d.path))].sort(), paths)
    }
    assert.equal(simulator.stats().requests.llm, 0)
    assert.equal(({} as Record<string, unknown>).admin, undefined)
  })
}
