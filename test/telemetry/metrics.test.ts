import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import parse, { type Family } from 'parse-prometheus-text-format'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { freePort, liveEnv, PRODUCTION_ARGS, startServerProcess } from '../spawn.ts'

const REQUESTS = 5
const CONNECTIONS = 4
// Labels Google Cloud Managed Service for Prometheus reserves for itself.
const RESERVED = ['location', 'cluster', 'namespace', 'job', 'instance', 'project_id']

const sum = (family: Family | undefined, filter: (labels: Record<string, string>) => boolean = () => true) =>
  (family?.metrics ?? []).filter((m) => filter(m.labels ?? {})).reduce((total, m) => total + Number(m.value ?? 0), 0)

/**
 * Reads the exposition with parse-prometheus-text-format, which throws on malformed lines. Its
 * histogram grouping drops labels (flattenMetrics keeps one unlabelled object per family), so the
 * series of each histogram are read a second time as untyped samples: x_count, x_sum, x_bucket.
 */
function readExposition (text: string) {
  const types = new Map(parse(text).map((family) => [family.name, family.type]))
  // Each labelled series comes out as its own x_count, x_sum and x_bucket families: merge them by name.
  const series = new Map<string, Family>()
  for (const family of parse(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'))) {
    const known = series.get(family.name)
    if (known === undefined) series.set(family.name, { ...family, metrics: [...family.metrics] })
    else known.metrics.push(...family.metrics)
  }
  for (const [name, family] of series) {
    if (!name.endsWith('_bucket')) continue
    const count = series.get(name.replace(/_bucket$/, '_count'))
    for (const total of count?.metrics ?? []) {
      const infinity = family.metrics.find((bucket) => bucket.labels?.le === '+Inf' &&
        Object.entries(total.labels ?? {}).every(([key, value]) => bucket.labels?.[key] === value))
      assert.equal(infinity?.value, total.value, `${name}: the +Inf bucket equals _count`)
    }
  }
  return { types, series }
}

/** The service started the production way, live against `simulator`; `scrape()` reads its metrics. */
async function production (t: TestContext, simulator: { origin: string }, env: Record<string, string> = {}) {
  const metricsPort = await freePort()
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env: { ...liveEnv(simulator.origin), METRICS_PORT: String(metricsPort), ...env } })
  const origin = await server.listening
  const scrape = async () => readExposition(await (await request(`http://127.0.0.1:${metricsPort}/metrics`)).body.text())
  return { origin, scrape }
}

test('the production start exposes every metric family on METRICS_PORT, with counts matching the requests made', async (t) => {
  const simulator = await startSimulator({ faults: { image: { status: 500 } } })
  t.after(() => simulator.close())
  const { origin, scrape } = await production(t, simulator, { UPSTREAM_CONNECTIONS: String(CONNECTIONS) })

  for (let i = 0; i < REQUESTS; i++) {
    const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF) })
    assert.equal(response.statusCode, 200)
    await response.body.dump()
  }
  const bad = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  await bad.body.dump()
  const publicMetrics = await request(`${origin}/metrics`)
  assert.equal(publicMetrics.statusCode, 404, 'metrics are never on the public port')
  await publicMetrics.body.dump()
  await sleep(100)

  const { types, series: families } = await scrape()
  const family = (name: string) => {
    assert.ok(families.has(name), `${name} is exported`)
    return families.get(name)!
  }
  for (const histogram of ['http_server_request_duration', 'http_client_request_duration', 'gen_ai_client_operation_duration', 'gen_ai_client_token_usage', 'content_engine_pipeline_step_duration']) {
    assert.equal(types.get(histogram), 'HISTOGRAM', histogram)
  }

  const server_ = family('http_server_request_duration_count')
  assert.equal(sum(server_, (l) => l.http_route === '/generate' && l.http_response_status_code === '200'), REQUESTS)
  assert.equal(sum(server_, (l) => l.http_route === '/generate' && l.http_response_status_code === '400'), 1)
  // Buckets that fit each histogram: requests and LLM calls reach minutes, GC pauses start at 0.1 ms.
  const bounds = (name: string) => [...new Set(family(`${name}_bucket`).metrics.map((m) => m.labels?.le).filter((le) => le !== '+Inf').map(Number))].sort((a, b) => a - b)
  assert.ok(bounds('http_server_request_duration').includes(120), 'request buckets reach 120 s')
  assert.ok(bounds('http_client_request_duration').includes(120), 'upstream call buckets reach 120 s')
  assert.ok(bounds('gen_ai_client_operation_duration').includes(120))
  assert.deepEqual([bounds('v8js_gc_duration')[0], bounds('v8js_gc_duration').at(-1)], [0.0001, 1], 'GC buckets from 0.1 ms to 1 s')
  assert.ok(sum(family('v8js_gc_duration_count')) > 0, 'garbage was collected and counted')

  const client = family('http_client_request_duration_count')
  // Every call the simulator received, retries of the failing image calls included.
  const received = Object.values(simulator.stats().requests).reduce((total, count) => total + count, 0)
  assert.ok(received > REQUESTS * 5)
  assert.equal(sum(client, (l) => l.server_address === '127.0.0.1'), received)
  assert.equal(sum(family('gen_ai_client_operation_duration_count'), (l) => l.gen_ai_operation_name === 'chat'), REQUESTS * 5)
  assert.equal(sum(family('gen_ai_client_token_usage_count'), (l) => l.gen_ai_token_type === 'output'), REQUESTS * 5)
  const steps = family('content_engine_pipeline_step_duration_count')
  for (const step of ['plan', 'sections', 'sentiment', 'keywords']) assert.equal(sum(steps, (l) => l.content_engine_step === step && l.content_engine_outcome === 'ok'), REQUESTS, step)
  assert.equal(sum(steps, (l) => l.content_engine_step === 'image' && l.content_engine_outcome === 'error'), REQUESTS)
  // Every image call fails: the first requests see upstream_error, and once ten failures in a row
  // open the image's own breaker, the rest see circuit_open. The LLM on the same origin is untouched.
  const warnings = family('content_engine_pipeline_warnings_total')
  assert.equal(sum(warnings, (l) => l.content_engine_step === 'image'), REQUESTS)
  assert.ok(sum(warnings, (l) => l.content_engine_step === 'image' && l.error_type === 'upstream_error') >= 1)
  const transitions = family('content_engine_upstream_breaker_transitions_total')
  assert.equal(sum(transitions, (l) => l.content_engine_upstream === 'image' && l.content_engine_breaker_state === 'open'), 1)
  assert.equal(sum(transitions, (l) => l.content_engine_upstream === 'llm'), 0)
  const attempts = family('content_engine_upstream_attempts_total')
  assert.equal(sum(attempts, () => true), received, 'every call the simulator received was counted as an attempt')
  assert.equal(sum(attempts, (l) => l.content_engine_upstream === 'llm' && l.content_engine_attempt === 'first'), REQUESTS * 5)

  for (const state of ['connected', 'free', 'pending', 'queued', 'running']) {
    const gauge = family(`content_engine_upstream_pool_${state}`)
    for (const sample of gauge.metrics) {
      const value = Number(sample.value)
      assert.ok(value >= 0 && value <= CONNECTIONS, `${state} ${value} within 0..${CONNECTIONS}`)
    }
  }
  assert.ok(Number(family('content_engine_upstream_pool_connected').metrics[0]?.value) >= 1)

  assert.ok(Number(family('process_memory_usage').metrics[0]?.value) > 0)
  assert.deepEqual(family('nodejs_memory_usage').metrics.map((m) => m.labels?.nodejs_memory_type).sort(), ['array_buffers', 'external', 'heap_total', 'heap_used'])
  assert.ok(family('nodejs_memory_usage').metrics.every((m) => Number(m.value) > 0))
  assert.ok(Number(family('process_unix_file_descriptor_count').metrics[0]?.value) > 0)
  assert.ok(Number(family('nodejs_eventloop_delay_p99').metrics[0]?.value) > 0)
  const utilisation = Number(family('nodejs_eventloop_utilization').metrics[0]?.value)
  assert.ok(utilisation > 0 && utilisation <= 1)

  for (const [name, { metrics }] of families) {
    for (const { labels = {} } of metrics) {
      for (const label of RESERVED) assert.ok(!(label in labels), `${name} carries no reserved label ${label}`)
    }
  }
})

// undici forgets an origin once its last connection closes; a gauge that kept its last busy value
// would say connections are open (a leak) when the upstream sees none.
test('the pool gauges read 0 once the idle keep-alive connections have closed, as the upstream sees it', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const service = await production(t, simulator, { UPSTREAM_CONNECTIONS: String(CONNECTIONS), UPSTREAM_KEEP_ALIVE_TIMEOUT_MS: '300' })
  const origin = service.origin
  const scrape = async () => {
    const { series } = await service.scrape()
    return (state: string) => (series.get(`content_engine_upstream_pool_${state}`)?.metrics ?? [])
      .filter((m) => m.labels?.server_address === '127.0.0.1' && m.labels?.server_port === new URL(simulator.origin).port)
      .map((m) => Number(m.value))
  }

  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF) })
    assert.equal(response.statusCode, 200)
    await response.body.dump()
  }))
  const busy = await scrape()
  assert.ok(busy('connected')[0]! >= 1, `connected ${busy('connected')} just after the load`)

  // Past the 300 ms keep-alive the service closes its idle sockets; wait until the simulator sees
  // none open (its own count, from its server), then read the gauges.
  for (let i = 0; i < 50 && simulator.stats().connections.open > 0; i++) await sleep(100)
  assert.equal(simulator.stats().connections.open, 0, 'the upstream sees no connection')
  const idle = await scrape()
  for (const state of ['connected', 'free', 'pending', 'queued', 'running']) {
    assert.deepEqual(idle(state), [0], `${state} reads 0 for the origin, not its last busy value`)
  }
})

test('in-flight requests and shed requests are counted: the gauge follows admissions, and a refusal past MAX_CONCURRENT_REQUESTS is counted by reason', async (t) => {
  const simulator = await startSimulator({ faults: { llm: { delayMs: 500 } } })
  t.after(() => simulator.close())
  const service = await production(t, simulator, { MAX_CONCURRENT_REQUESTS: '2' })
  const origin = service.origin
  const scrape = async () => {
    const { series } = await service.scrape()
    return { inFlight: sum(series.get('content_engine_requests_in_flight')), shed: (reason: string) => sum(series.get('content_engine_requests_shed_total'), (l) => l.content_engine_shed_reason === reason) }
  }
  const generate = async () => {
    const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD_BRIEF, image: false }) })
    return { status: response.statusCode, body: await response.body.json() as { error?: { code: string } } }
  }

  const running = [generate(), generate()]
  await sleep(200)
  assert.equal((await scrape()).inFlight, 2, 'both admitted requests are in flight (each waits 500 ms on its plan)')
  const refused = await generate()
  assert.equal(refused.status, 503)
  assert.equal(refused.body.error?.code, 'overloaded')
  assert.deepEqual((await Promise.all(running)).map((answer) => answer.status), [200, 200])
  const after = await scrape()
  assert.equal(after.shed('concurrency'), 1)
  assert.equal(after.inFlight, 0)
})
