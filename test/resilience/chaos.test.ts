import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { CHAOS_KINDS, type Chaos } from '../../src/simulator/faults.ts'
import { startStack } from '../helper.ts'

// Every attempt gets 500 ms to answer, so a hung call is retried within the request's 3 s.
const ENV = {
  REQUEST_TIMEOUT_MS: '3000',
  UPSTREAM_HEADERS_TIMEOUT_MS: '500',
  UPSTREAM_BODY_TIMEOUT_MS: '500',
  UPSTREAM_BACKOFF_BASE_MS: '20',
  BREAKER_OPEN_MS: '500',
  MAX_CONCURRENT_REQUESTS: '1000'
}
const chaos = (rate: number, kinds: Chaos['kinds'] = CHAOS_KINDS): Chaos => ({ rate, kinds, slowMs: 100 })
const BRIEF = { topic: 'degrading in proportion to the fault', length: 'short' }

async function chaosStack (t: TestContext, rate: number, kinds?: Chaos['kinds']) {
  return startStack(t, { env: ENV, simulator: { chaos: chaos(rate, kinds), keepAliveTimeoutMs: 60_000 } })
}

async function drive (app: FastifyInstance, total: number, concurrency: number) {
  const statuses: Record<string, number> = {}
  const answers: Array<{ status: number, ms: number, retryAfter: string | undefined, code: string | undefined }> = []
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < total) {
      const started = performance.now()
      const response = await app.inject({ method: 'POST', url: '/generate', payload: BRIEF })
      const ms = Number(/app;dur=([\d.]+)/.exec(String(response.headers['server-timing']))?.[1] ?? performance.now() - started)
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1
      // A section retried after a fault mid-stream leaves no half of itself behind: three headings, each once.
      if (response.statusCode === 200) assert.equal(response.json().body.match(/^## /gm).length, 3)
      answers.push({ status: response.statusCode, ms, retryAfter: response.headers['retry-after'] as string | undefined, code: response.statusCode === 200 ? undefined : response.json().error.code })
    }
  }))
  return { statuses, answers }
}

/** Calls that reached the simulator, over the first attempts the service made: retry amplification. */
function amplification (app: FastifyInstance, simulator: { stats: () => { requests: Record<string, number> } }) {
  const { requests } = simulator.stats()
  const sent = requests.llm! + requests.image! + requests.sentiment! + requests.entities!
  const first = Object.values(app.guard.stats().upstreams).reduce((sum, kind) => sum + kind.attempts.first, 0)
  return sent / first
}

async function nothingInFlight (app: FastifyInstance, simulator: { stats: () => { inFlight: number } }) {
  assert.equal(app.inFlight.size, 0)
  for (let i = 0; i < 100 && simulator.stats().inFlight > 0; i++) await sleep(10)
  assert.equal(simulator.stats().inFlight, 0, 'no upstream call left running')
}

for (const [rate, target] of [[0.05, 0.99], [0.2, 0.9]] as const) {
  test(`at a ${rate * 100} % per-call fault rate (reset, 5xx, malformed, wrong shape, slow, hang), at least ${target * 100} % of posts are 200 and retries stay within 1.35×`, async (t) => {
    const { app, simulator } = await chaosStack(t, rate)

    const { statuses } = await drive(app, 400, 25)

    const ok = (statuses[200] ?? 0) / 400
    const ratio = amplification(app, simulator)
    t.diagnostic(JSON.stringify({ statuses, success: ok, amplification: +ratio.toFixed(3), chaosFaults: simulator.stats().chaosFaults, guard: app.guard.stats().upstreams }))
    assert.ok(simulator.stats().chaosFaults > 0, 'faults were injected')
    assert.equal(statuses[500], undefined, 'no 500')
    assert.ok(ok >= target, `${(ok * 100).toFixed(1)} % answered 200`)
    assert.ok(ratio <= 1.35, `attempts / first attempts ${ratio.toFixed(3)}`)
    assert.deepEqual(Object.values(app.guard.stats().upstreams).map((kind) => kind.state).filter((state) => state !== 'closed'), [], 'no breaker opened')
    await nothingInFlight(app, simulator)
  })
}

test('with the upstream down, the breaker opens, retries stay within the budget, and answers come fast with Retry-After; it recovers within the open period and one probe round', async (t) => {
  const { app, simulator } = await chaosStack(t, 1, ['reset', '5xx'])

  const { answers } = await drive(app, 300, 10)

  const open = answers.filter((answer) => answer.code === 'circuit_open')
  assert.ok(open.length > 250, `most answers came from the open breaker: ${open.length} of 300`)
  for (const answer of open) {
    assert.equal(answer.status, 503)
    assert.ok(Number(answer.retryAfter) >= 1, 'Retry-After')
  }
  // Service time (Server-Timing). A percentile, not the maximum: ten callers share one event loop
  // with the test itself, and one garbage collection on a busy machine is not the breaker's doing.
  const times = open.map((answer) => answer.ms).sort((a, b) => a - b)
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!
  t.diagnostic(`breaker-open answers, service time: median ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms, max ${times.at(-1)!.toFixed(1)} ms`)
  assert.ok(at(0.95) < 50, `breaker-open answers under 50 ms of service time at p95 (${at(0.95).toFixed(1)} ms)`)
  const llm = app.guard.stats().upstreams.llm!
  assert.ok(llm.attempts.retries <= Math.max(100, 0.3 * llm.attempts.first), `LLM retries ${llm.attempts.retries} for ${llm.attempts.first} first attempts: within the budget`)
  assert.equal(answers.filter((answer) => answer.status === 500).length, 0)

  simulator.setChaos(undefined)
  await sleep(500 + 50)
  const probeRound = await drive(app, 1, 1)
  assert.deepEqual(probeRound.statuses, { 200: 1 }, 'after the open period, the probes go through and succeed')
  const { statuses } = await drive(app, 50, 5)
  assert.deepEqual(statuses, { 200: 50 }, 'back to full success after the open period and one probe round')
  assert.equal(app.guard.stats().upstreams.llm!.state, 'closed')
  await nothingInFlight(app, simulator)
})
