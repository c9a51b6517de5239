import assert from 'node:assert/strict'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { freePort, liveEnv, startServerProcess } from '../spawn.ts'

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
  assert.deepEqual(steps.map((span) => span.name).sort(), ['pipeline draft', 'pipeline image', 'pipeline keywords', 'pipeline refine', 'pipeline sentiment'])
  for (const step of steps) assert.ok(ancestors(step).includes(root), `${step.name} sits under the server span`)

  const clients = trace.filter((span) => span.kind === CLIENT)
  assert.equal(clients.length, 5, 'one undici client span per upstream call')
  for (const client of clients) {
    assert.ok(byId.get(client.parentSpanId ?? '')?.name.startsWith('pipeline '), `${client.name} is the child of a step span`)
  }

  const upstreamTraceIds = simulator.calls.map((call) => /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(String(call.headers.traceparent))?.[1])
  assert.deepEqual(upstreamTraceIds, Array(5).fill(root.traceId), 'every upstream call carried a traceparent of this trace')

  const access = server.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((line) => line.httpRequest?.requestUrl === '/generate')
  assert.ok(access, 'an access log line for the request')
  assert.equal(access['logging.googleapis.com/trace'], `projects/test-project/traces/${root.traceId}`)
  assert.match(access['logging.googleapis.com/spanId'], /^[0-9a-f]{16}$/)
  assert.equal(access['logging.googleapis.com/trace_sampled'], true)
})
