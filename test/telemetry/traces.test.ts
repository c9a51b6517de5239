import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { freePort, liveEnv, PRODUCTION_ARGS, startServerProcess } from '../spawn.ts'

interface CapturedSpan { name: string, kind: number, traceId: string, spanId: string, parentSpanId?: string, attributes: Record<string, unknown> }
const SERVER = 1
const CLIENT = 2

test('one trace per request under ESM: server span, a span per step, undici client spans below them, traceparent upstream, trace ids in the logs', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const server = startServerProcess(t, {
    args: ['--import', './test/telemetry/capture-spans.ts', 'dist/server.js'],
    env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), OTEL_TRACES_SAMPLER_ARG: '1', GOOGLE_CLOUD_PROJECT: 'test-project' },
    fd3: true
  })
  const spans: CapturedSpan[] = []
  createInterface({ input: server.child.stdio[3] as NodeJS.ReadableStream }).on('line', (line) => spans.push(JSON.parse(line)))
  const origin = await server.listening

  const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF) })
  assert.equal(response.statusCode, 200)
  await response.body.dump()
  await sleep(200)

  const root = spans.find((span) => span.kind === SERVER && span.attributes['http.route'] === '/generate')
  assert.ok(root, `a server span for /generate among ${spans.map((s) => s.name).join(', ')}`)
  const trace = spans.filter((span) => span.traceId === root.traceId)
  const byId = new Map(trace.map((span) => [span.spanId, span]))
  const ancestors = (span: CapturedSpan) => {
    const chain: CapturedSpan[] = []
    for (let parent = byId.get(span.parentSpanId ?? ''); parent !== undefined; parent = byId.get(parent.parentSpanId ?? '')) chain.push(parent)
    return chain
  }

  const steps = trace.filter((span) => span.name.startsWith('pipeline '))
  assert.deepEqual(steps.map((span) => span.name).sort(), ['pipeline image', 'pipeline keywords', 'pipeline plan', 'pipeline sections', 'pipeline sentiment'])
  for (const step of steps) assert.ok(ancestors(step).includes(root), `${step.name} sits under the server span`)

  const clients = trace.filter((span) => span.kind === CLIENT)
  assert.equal(clients.length, 8, 'one undici client span per upstream call: plan, four sections, image, sentiment, entities')
  for (const client of clients) {
    assert.ok(byId.get(client.parentSpanId ?? '')?.name.startsWith('pipeline '), `${client.name} is the child of a step span`)
  }

  const upstreamTraceIds = simulator.calls.map((call) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(String(call.headers.traceparent))?.[1])
  assert.deepEqual(upstreamTraceIds, Array(8).fill(root.traceId), 'every upstream call carried a traceparent of this trace')

  const access = server.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((line) => line.httpRequest?.requestUrl === '/generate')
  assert.ok(access, 'an access log line for the request')
  assert.equal(access['logging.googleapis.com/trace'], `projects/test-project/traces/${root.traceId}`)
  assert.match(access['logging.googleapis.com/spanId'], /^[0-9a-f]{16}$/)
  assert.equal(access['logging.googleapis.com/trace_sampled'], true)
})

test('every log line of a request carries the caller\'s trace, whichever phase wrote it: prompts mid-pipeline, auth failure, bad JSON, invalid brief, bodies in two packets, access lines', async (t) => {
  // The context manager does not patch request and response emitters (src/telemetry/sdk.ts); this
  // checks that lines written after the body is read, in hooks and deep in the pipeline, still
  // find the request's span.
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const server = startServerProcess(t, {
    args: PRODUCTION_ARGS,
    env: {
      ...liveEnv(simulator.origin),
      METRICS_PORT: String(await freePort()),
      GOOGLE_CLOUD_PROJECT: 'test-project',
      AUTH_MODE: 'api-key',
      AUTH_API_KEYS: `blog:${createHash('sha256').update('key-blog').digest('hex')}`,
      LOG_PROMPTS: 'true'
    }
  })
  const origin = await server.listening

  const cases = [
    { name: 'ok', key: 'key-blog', body: JSON.stringify(GOOD_BRIEF), status: 200, messages: [...Array(5).fill('LLM prompt (LOG_PROMPTS)'), 'request completed'] },
    { name: 'no credential', key: undefined, body: JSON.stringify(GOOD_BRIEF), status: 401, messages: ['A valid credential is required.', 'request completed'] },
    { name: 'bad JSON', key: 'key-blog', body: '{"topic":', status: 400, messages: ['request completed'] },
    { name: 'invalid brief', key: 'key-blog', body: JSON.stringify({ topic: 42 }), status: 400, messages: ['request completed'] },
    // Bodies that arrive in two writes 30 ms apart, read in callbacks of their own.
    { name: 'ok, in two packets', key: 'key-blog', body: JSON.stringify(GOOD_BRIEF), split: true, status: 200, messages: [...Array(5).fill('LLM prompt (LOG_PROMPTS)'), 'request completed'] },
    { name: 'bad JSON, in two packets', key: 'key-blog', body: '{"topic": "connection pooling", ', split: true, status: 400, messages: ['request completed'] }
  ]
  async function * twoPackets (body: string) {
    yield body.slice(0, 10)
    await sleep(30)
    yield body.slice(10)
  }
  const traceIds = new Map<string, string>()
  for (const [index, item] of cases.entries()) {
    const traceId = createHash('sha256').update(item.name).digest('hex').slice(0, 32)
    traceIds.set(traceId, item.name)
    const response = await request(`${origin}/generate`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${String(index + 1).padStart(16, '0')}-01`,
        ...(item.key === undefined ? {} : { 'x-api-key': item.key })
      },
      body: item.split === true ? Readable.from(twoPackets(item.body)) : item.body
    })
    assert.equal(response.statusCode, item.status, item.name)
    await response.body.dump()
  }
  await sleep(200)

  const lines = server.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
  const requestLines = lines.filter((line) => line.requestId !== undefined)
  for (const line of requestLines) {
    assert.match(String(line['logging.googleapis.com/trace']), /^projects\/test-project\/traces\/[0-9a-f]{32}$/, `trace on "${line.message}"`)
  }
  for (const [traceId, name] of traceIds) {
    const own = requestLines.filter((line) => line['logging.googleapis.com/trace'] === `projects/test-project/traces/${traceId}`)
    assert.deepEqual(own.map((line) => line.message).sort(), cases.find((item) => item.name === name)!.messages.sort(), name)
  }
})

test('a trace the caller did not sample: nothing recorded, every upstream call still carries its trace id, unsampled', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const server = startServerProcess(t, {
    args: ['--import', './test/telemetry/capture-spans.ts', 'dist/server.js'],
    env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), OTEL_TRACES_SAMPLER_ARG: '1' },
    fd3: true
  })
  const spans: CapturedSpan[] = []
  createInterface({ input: server.child.stdio[3] as NodeJS.ReadableStream }).on('line', (line) => spans.push(JSON.parse(line)))
  const origin = await server.listening

  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const response = await request(`${origin}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-00` },
    body: JSON.stringify(GOOD_BRIEF)
  })
  assert.equal(response.statusCode, 200)
  await response.body.dump()
  await sleep(200)

  assert.deepEqual(spans.filter((span) => span.traceId === traceId), [], 'the sampler honours the caller\'s decision')
  const upstream = simulator.calls.map((call) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-(0[01])$/.exec(String(call.headers.traceparent))?.slice(1))
  assert.deepEqual(upstream, Array(8).fill([traceId, '00']))
})
