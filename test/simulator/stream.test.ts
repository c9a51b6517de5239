import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createParser } from 'eventsource-parser'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { realPace } from '../../src/simulator/stream.ts'

const SECTION = { model: 'm', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: '<section>{"brief":{"topic":"kites"},"words":200}</section>' }] }

/** Reads a stream as a client would, with a real SSE parser: the events, and when each arrived. */
async function readStream (origin: string, fault?: string, onEvent?: (data: string) => void) {
  const started = performance.now()
  const response = await request(`${origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer k', ...(fault === undefined ? {} : { 'x-sim-fault': fault }) },
    body: JSON.stringify(SECTION),
    bodyTimeout: 300,
    reset: true
  })
  const events: Array<{ data: string, at: number }> = []
  const parser = createParser({
    onEvent: (event) => {
      events.push({ data: event.data, at: performance.now() - started })
      onEvent?.(event.data)
    }
  })
  let error: string | undefined
  try {
    for await (const chunk of response.body) parser.feed(String(chunk))
  } catch (cause) {
    error = (cause as { code?: string }).code ?? String(cause)
  }
  const chunks = events.filter((event) => event.data !== '[DONE]').map((event) => ({ ...JSON.parse(event.data), at: event.at }))
  const content = chunks.map((chunk) => chunk.choices?.[0]?.delta?.content ?? '').join('')
  return { status: response.statusCode, type: response.headers['content-type'], events, chunks, content, error }
}

test('a streamed completion: chat.completion.chunk events, a finish_reason, a usage chunk, then [DONE]', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const { status, type, chunks, content, events } = await readStream(simulator.origin)
  assert.equal(status, 200)
  assert.equal(type, 'text/event-stream')
  assert.ok(content.split(/\s+/).length > 150, 'the section, as long as asked')
  assert.equal(chunks.findLast((chunk) => chunk.choices?.length > 0).choices[0].finish_reason, 'stop')
  assert.equal(chunks.at(-1).usage.completion_tokens, Math.ceil(content.length / 4))
  assert.equal(events.at(-1)!.data, '[DONE]')
})

test('at real pace scaled by 0.05: the first token after 25 ms, then 1,600 tokens a second', async (t) => {
  const simulator = await startSimulator({ pace: realPace(0.05) })
  t.after(() => simulator.close())
  const { content, chunks } = await readStream(simulator.origin)
  const withText = chunks.filter((chunk) => chunk.choices?.[0]?.delta?.content)
  const first = withText[0]!.at
  const last = withText.at(-1)!.at
  const expectedMs = Math.ceil(content.length / 4) / 1_600 * 1000
  assert.ok(first >= 25, `first token at ${first.toFixed(0)} ms`)
  assert.ok(last - first >= expectedMs * 0.7 && last - first <= expectedMs * 2 + 100, `${(last - first).toFixed(0)} ms of writing for ${expectedMs.toFixed(0)} expected`)
})

test('the pace is kept against the clock: after 150 ms of a blocked event loop the stream catches up', async (t) => {
  const simulator = await startSimulator({ pace: realPace(0.1) })
  t.after(() => simulator.close())
  // 40 ms after the first token, this process (simulator and client) is blocked for 150 ms, as a
  // simulator serving many streams on a shared core falls behind its timers.
  let block: NodeJS.Timeout | undefined
  t.after(() => clearTimeout(block))
  const { content, chunks } = await readStream(simulator.origin, undefined, (data) => {
    if (block !== undefined || !data.includes('"content":"') || data.includes('"content":""')) return
    block = setTimeout(() => {
      const until = performance.now() + 150
      while (performance.now() < until);
    }, 40)
  })
  const withText = chunks.filter((chunk) => chunk.choices?.[0]?.delta?.content)
  const writingMs = withText.at(-1)!.at - withText[0]!.at
  const expectedMs = Math.ceil(content.length / 4) / 800 * 1000
  assert.ok(expectedMs > 300, `a stream long enough to be blocked mid-way (${expectedMs.toFixed(0)} ms)`)
  assert.ok(writingMs >= expectedMs - 40 && writingMs <= expectedMs + 60, `${writingMs.toFixed(0)} ms of writing for ${expectedMs.toFixed(0)} expected: the block was added on top`)
})

test('the faults a streaming client must survive: a stall, a cut socket, an in-band error, no [DONE], a length cut-off', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const whole = (await readStream(simulator.origin)).content

  const stall = await readStream(simulator.origin, 'stall')
  assert.equal(stall.error, 'UND_ERR_BODY_TIMEOUT', 'nothing more comes, and the socket stays open')
  assert.ok(stall.content.length > 0 && stall.content.length < whole.length)

  const cut = await readStream(simulator.origin, 'cut')
  assert.ok(cut.error !== undefined, 'the socket was destroyed mid-stream')
  assert.ok(cut.content.length > 0 && cut.content.length < whole.length)

  const inBand = await readStream(simulator.origin, 'stream-error')
  assert.equal(inBand.chunks.at(-1).error.type, 'server_error')
  assert.ok(!inBand.events.some((event) => event.data === '[DONE]'))

  const noDone = await readStream(simulator.origin, 'no-done')
  assert.equal(noDone.content, whole)
  assert.ok(!noDone.events.some((event) => event.data === '[DONE]'))
  assert.ok(noDone.chunks.every((chunk) => chunk.choices?.[0]?.finish_reason == null))

  const length = await readStream(simulator.origin, 'finish-length')
  assert.ok(length.content.length < whole.length)
  assert.equal(length.chunks.findLast((chunk) => chunk.choices?.length > 0).choices[0].finish_reason, 'length')
  assert.equal(simulator.stats().inFlight, 0)
})
