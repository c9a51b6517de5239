import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createParser } from 'eventsource-parser'
import { request } from 'undici'
import { realPace } from '../../src/simulator/stream.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

interface Event { event: string, id: string | undefined, data: any, at: number }

/** A streaming caller over a real socket, reading with a real SSE parser. */
async function stream (origin: string, body: unknown = GOOD_BRIEF, headers: Record<string, string> = {}, onEvent?: (event: Event, abort: () => void) => void) {
  const started = performance.now()
  const controller = new AbortController()
  const response = await request(`${origin}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify(body),
    signal: controller.signal
  })
  const events: Event[] = []
  const comments: string[] = []
  const parser = createParser({
    onEvent: (event) => {
      const parsed = { event: event.event ?? 'message', id: event.id, data: JSON.parse(event.data), at: performance.now() - started }
      events.push(parsed)
      onEvent?.(parsed, () => controller.abort())
    },
    onComment: (comment) => comments.push(comment.trim())
  })
  try {
    for await (const chunk of response.body) parser.feed(String(chunk))
  } catch (error) {
    if (!controller.signal.aborted) throw error
  }
  return { status: response.statusCode, headers: response.headers, events, comments, text: events.filter((e) => e.event === 'delta').map((e) => e.data.text).join('') }
}

const withoutVolatile = ({ id, timings, ...post }: Record<string, unknown>) => post

test('a streamed post: accepted, plan, deltas in reading order, image, analysis, result; the deltas are the body, and the result is the JSON answer', async (t) => {
  const { app } = await startStack(t, { simulator: { pace: realPace(0.05) } })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })

  const { status, headers, events, text } = await stream(origin)

  assert.equal(status, 200)
  assert.equal(headers['content-type'], 'text/event-stream')
  assert.equal(headers['cache-control'], 'no-cache')
  assert.equal(headers['x-accel-buffering'], 'no')
  assert.equal(headers['content-encoding'], undefined)
  const names = events.map((e) => e.event)
  assert.equal(names[0], 'accepted')
  assert.equal(names[1], 'plan')
  assert.equal(names.at(-1), 'result', names.join(' '))
  assert.deepEqual(new Set(names), new Set(['accepted', 'plan', 'delta', 'image', 'analysis', 'result']))
  assert.deepEqual(events.map((e) => Number(e.id)), events.map((_, index) => index), 'every event has an id, in order')
  const sections = events.filter((e) => e.event === 'delta').map((e) => e.data.section)
  assert.deepEqual(sections, sections.toSorted((a, b) => a - b), 'deltas in reading order')
  assert.ok(new Set(sections).size === 4 && sections.length > 4, 'four sections, several deltas')
  const result = events.at(-1)!.data
  assert.equal(text, result.body, 'the deltas, appended, are the body')
  assert.equal(events[0]!.data.id, result.id)
  assert.equal(events[1]!.data.title, result.title)

  const json = (await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })).json()
  assert.deepEqual(withoutVolatile(result), withoutVolatile(json), 'the same post as the JSON answer, but for its id and timings')
  // The first section streams live: its first delta comes long before the last section ends.
  const firstDelta = events.find((e) => e.event === 'delta')!
  assert.ok(firstDelta.at < events.findLast((e) => e.event === 'delta')!.at - 50)
})

test('errors before the first byte are HTTP statuses with the JSON error shape; a failure after it is an error event, and the end', async (t) => {
  const sha = (text: string) => createHash('sha256').update(text).digest('hex')
  const { app, simulator } = await startStack(t, { env: { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha('key-a')}` } })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  const key = { 'x-api-key': 'key-a' }

  const invalid = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...key }, body: '{"topic":"x"}' })
  assert.equal(invalid.statusCode, 400)
  assert.equal((await invalid.body.json() as { error: { code: string } }).error.code, 'invalid_request')
  const unauthenticated = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(GOOD_BRIEF) })
  assert.equal(unauthenticated.statusCode, 401)
  assert.equal(unauthenticated.headers['content-type'], 'application/json; charset=utf-8')
  await unauthenticated.body.dump()

  simulator.setFault('llm', { status: 500, kind: 'section' })
  const failed = await stream(origin, GOOD_BRIEF, key)
  assert.equal(failed.status, 200)
  assert.deepEqual(failed.events.map((e) => e.event).slice(0, 2), ['accepted', 'plan'])
  const last = failed.events.at(-1)!
  assert.equal(last.event, 'error')
  assert.equal(last.data.status, 502)
  assert.equal(last.data.error.code, 'upstream_error')
  assert.equal(typeof last.data.requestId, 'string')
  assert.equal(failed.events.filter((e) => e.event === 'error' || e.event === 'result').length, 1, 'exactly one ending')
})

test('a heartbeat comment while an upstream stalls, then the deadline ends the stream with an upstream_timeout error event', async (t) => {
  const { app } = await startStack(t, { env: { SSE_HEARTBEAT_MS: '100' }, simulator: { faults: { llm: { stall: true, kind: 'section' } } } })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })

  const { events, comments } = await stream(origin, GOOD_BRIEF, { 'x-request-timeout-ms': '600' })

  assert.ok(comments.filter((comment) => comment === 'keep-alive').length >= 2, `heartbeats: ${comments.length}`)
  const last = events.at(-1)!
  assert.equal(last.event, 'error')
  assert.equal(last.data.error.code, 'upstream_timeout')
  assert.equal(last.data.status, 504)
  assert.ok(last.at >= 590 && last.at < 1_500, `ended at ${last.at.toFixed(0)} ms`)
})

test('a caller that leaves mid-section: every upstream stream is closed within 100 ms', async (t) => {
  const { app, simulator } = await startStack(t, { simulator: { pace: realPace(0.05) } })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })

  await stream(origin, GOOD_BRIEF, {}, (event, abort) => { if (event.event === 'delta') abort() })
  await sleep(100)

  assert.equal(simulator.stats().inFlight, 0)
  assert.ok(simulator.calls.filter((call) => call.kind === 'section').every((call) => call.aborted), 'the sections were cut off, not finished')
})
