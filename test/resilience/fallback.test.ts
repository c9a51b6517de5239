import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { liveEnv } from '../spawn.ts'

// The fallback LLM is a second simulator on its own port, reached at Vertex AI's
// OpenAI-compatible path, with its own faults: every rule of the chain over real sockets.
const VERTEX_PATH = '/v1/projects/demo/locations/europe-west1/endpoints/openapi'
// The image fallback, Imagen, at Vertex AI's predict path under the same location.
const IMAGEN_BASE = '/v1/projects/demo/locations/europe-west1'

async function chain (t: TestContext, options: { primary?: SimulatorOptions, fallback?: SimulatorOptions, env?: Record<string, string> } = {}) {
  const primary = await startSimulator(options.primary)
  const fallback = await startSimulator(options.fallback)
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ...liveEnv(primary.origin),
    LLM_FALLBACK_BASE_URL: `${fallback.origin}${VERTEX_PATH}`,
    LLM_FALLBACK_MODEL: 'google/gemini-2.5-flash',
    LLM_FALLBACK_API_KEY: 'fallback-key',
    IMAGE_FALLBACK_BASE_URL: `${fallback.origin}${IMAGEN_BASE}`,
    IMAGE_FALLBACK_MODEL: 'imagen-4.0-generate-001',
    IMAGE_FALLBACK_API_KEY: 'imagen-key',
    UPSTREAM_BACKOFF_BASE_MS: '5',
    ...options.env
  })
  const app = await buildApp({ config, upstreams: config.upstreams! })
  await app.ready()
  t.after(async () => {
    await app.close()
    await primary.close()
    await fallback.close()
  })
  const generate = async (payload: object = GOOD_BRIEF) => {
    const response = await app.inject({ method: 'POST', url: '/generate', payload })
    return { status: response.statusCode, body: response.json() }
  }
  return { app, primary, fallback, generate, names: { primary: config.upstreams!.llm.provider, fallback: config.upstreams!.llmFallback!.provider, imageFallback: config.upstreams!.imageFallback!.provider } }
}

const llmCalls = (simulator: Simulator) => simulator.calls.filter((call) => call.endpoint === 'llm')
// GOOD_BRIEF asks for the default length, medium: a plan and four sections.
const GOOD_SECTIONS = 4

test('the primary LLM in a 503 storm: every post is 200, written by the fallback, with fallback_used and its usage', async (t) => {
  const { primary, fallback, generate, names, app } = await chain(t, { primary: { faults: { llm: { status: 503 } } } })

  const statuses: number[] = []
  let last: Record<string, any> = {}
  for (let i = 0; i < 30; i++) {
    const { status, body } = await generate()
    statuses.push(status)
    last = body
  }
  assert.deepEqual([...new Set(statuses)], [200])
  assert.deepEqual(last.warnings.filter((w: { code: string }) => w.code === 'fallback_used').map((w: { step: string, provider: string }) => [w.step, w.provider]),
    [['plan', names.fallback], ['sections', names.fallback]])
  assert.deepEqual(Object.keys(last.usage.byProvider), [names.fallback], 'every token came from the fallback')
  assert.equal(last.usage.byProvider[names.fallback].totalTokens, last.usage.totalTokens)

  // The fallback was called at Vertex's path, with its own model and key.
  const sent = llmCalls(fallback).at(-1)!
  assert.equal(sent.headers.authorization, 'Bearer fallback-key')
  assert.equal((fallback.lastBodies.section as { model: string }).model, 'google/gemini-2.5-flash')
  // Each provider has its own breaker: the primary's opened, and later posts skipped it at once.
  assert.equal(app.guard.stats().upstreams.llm!.state, 'open')
  assert.equal(app.guard.stats().upstreams['llm.fallback']!.state, 'closed')
  assert.ok(llmCalls(primary).length < 30, `the open breaker kept calls off the primary: ${llmCalls(primary).length} calls for 30 posts`)
})

test('the primary answers 400, 401, 403, 404 or 422: the caller gets the error, and the fallback is never called', async (t) => {
  for (const status of [400, 401, 403, 404, 422]) {
    const { fallback, generate } = await chain(t, { primary: { faults: { llm: { status } } } })
    const { status: answered, body } = await generate()
    assert.equal(answered, 502, `primary ${status}`)
    assert.equal(body.error.code, 'upstream_error')
    assert.equal(llmCalls(fallback).length, 0, `primary ${status}: a broken deployment is surfaced, not hidden`)
  }
})

test('a section cut off mid-stream after its first tokens is an error, never a fallback', async (t) => {
  const { fallback, generate } = await chain(t, { primary: { faults: { llm: { cut: true, kind: 'section' } } } })
  const { status, body } = await generate()
  assert.equal(status, 502)
  assert.equal(body.error.code, 'upstream_unavailable')
  assert.equal(llmCalls(fallback).length, 0)
})

test('no first token within the first-token timeout: the call moves to the fallback', async (t) => {
  const { fallback, generate } = await chain(t, {
    primary: { faults: { llm: { delayMs: 2_000, kind: 'plan' } } },
    env: { LLM_FIRST_TOKEN_TIMEOUT_MS: '150', UPSTREAM_MAX_ATTEMPTS: '1' }
  })
  const { status, body } = await generate()
  assert.equal(status, 200)
  assert.deepEqual(body.warnings.map((w: { code: string, step: string }) => `${w.step} ${w.code}`), ['plan fallback_used'])
  assert.deepEqual(llmCalls(fallback).map((call) => call.kind), ['plan'])
})

test('a 429 that asks for longer than the request can wait moves the call to the fallback; a short one is waited out on the primary', async (t) => {
  const long = await chain(t, { primary: { faults: { llm: { status: 429, retryAfter: '120' } } } })
  const moved = await long.generate()
  assert.equal(moved.status, 200)
  assert.deepEqual(moved.body.warnings.map((w: { code: string, step: string }) => `${w.step} ${w.code}`), ['plan fallback_used', 'sections fallback_used'])
  assert.equal(llmCalls(long.primary)[0]!.kind, 'plan', 'the primary was tried first')

  const short = await chain(t, { primary: { faults: { llm: { status: 429, retryAfter: '1', times: 1 } } } })
  const waited = await short.generate()
  assert.equal(waited.status, 200)
  assert.deepEqual(waited.body.warnings, [])
  assert.equal(llmCalls(short.fallback).length, 0, 'a wait the request can afford is no reason to leave the primary')
})

test('a quota-exhausted 429 moves the call to the fallback', async (t) => {
  const { primary, fallback, generate } = await chain(t, { primary: { faults: { llm: { quota: true } } } })
  const { status, body } = await generate()
  assert.equal(status, 200)
  assert.ok(body.warnings.some((w: { code: string }) => w.code === 'fallback_used'))
  assert.ok(llmCalls(primary).length > 0 && llmCalls(fallback).length > 0)
})

const imageCalls = (simulator: Simulator) => simulator.calls.filter((call) => call.endpoint === 'image')

test('the primary image API in a 503 storm: Imagen draws the image, with fallback_used; a 401 is surfaced, not hidden', async (t) => {
  const { primary, fallback, generate, names } = await chain(t, { primary: { faults: { image: { status: 503 } } } })
  const { status, body } = await generate({ ...GOOD_BRIEF, image: true })
  assert.equal(status, 200)
  assert.match(body.image.url, /^data:image\/png;base64,/)
  assert.deepEqual(body.warnings.map((w: { code: string, step: string, provider?: string }) => [w.step, w.code, w.provider]), [['image', 'fallback_used', names.imageFallback]])
  assert.ok(imageCalls(primary).length >= 1)
  // Imagen's predict, with its own key: one sample, at the ratio nearest IMAGE_SIZE (1024x1024).
  const sent = imageCalls(fallback)
  assert.equal(sent.length, 1)
  assert.equal(sent[0]!.headers.authorization, 'Bearer imagen-key')
  const imagenBody = fallback.lastBodies.image as { instances: Array<{ prompt: string }>, parameters: Record<string, unknown> }
  assert.deepEqual(imagenBody.parameters, { sampleCount: 1, aspectRatio: '1:1' })
  assert.ok(imagenBody.instances[0]!.prompt.length > 0)

  const broken = await chain(t, { primary: { faults: { image: { status: 401 } } } })
  const refused = await broken.generate({ ...GOOD_BRIEF, image: true })
  assert.equal(refused.status, 200, 'the image is optional')
  assert.equal(refused.body.image, null)
  assert.deepEqual(refused.body.warnings.map((w: { code: string, step: string }) => `${w.step} ${w.code}`), ['image upstream_error'])
  assert.equal(imageCalls(broken.fallback).length, 0)
})

test('both providers down: 502 upstream_error, as without a fallback', async (t) => {
  const { primary, fallback, generate } = await chain(t, { primary: { faults: { llm: { status: 503 } } }, fallback: { faults: { llm: { status: 500 } } } })
  const { status, body } = await generate()
  assert.equal(status, 502)
  assert.equal(body.error.code, 'upstream_error')
  assert.ok(llmCalls(primary).length > 0 && llmCalls(fallback).length > 0)
})

test('per request, not per instance: after one call moved to the fallback, the next one tries the primary', async (t) => {
  // Three failures: the plan's three attempts on the primary, fewer than open its breaker.
  const { primary, generate, names } = await chain(t, { primary: { faults: { llm: { status: 503, times: 3 } } } })
  const first = await generate()
  assert.equal(first.status, 200)
  assert.deepEqual(first.body.warnings.map((w: { step: string, code: string }) => `${w.step} ${w.code}`), ['plan fallback_used'], 'the sections, a moment later, went to the primary')
  assert.deepEqual(Object.keys(first.body.usage.byProvider).sort(), [names.primary, names.fallback].sort())
  const primaryBefore = llmCalls(primary).length
  const second = await generate()
  assert.deepEqual(second.body.warnings, [])
  assert.deepEqual(Object.keys(second.body.usage.byProvider), [names.primary])
  assert.equal(llmCalls(primary).length, primaryBefore + 1 + GOOD_SECTIONS)
})

test('while the primary\'s breaker is open every call goes straight to the fallback; once it closes, back to the primary', async (t) => {
  const { primary, fallback, generate, app } = await chain(t, {
    primary: { faults: { llm: { status: 503, times: 3 } } },
    env: { BREAKER_CONSECUTIVE_FAILURES: '3', BREAKER_OPEN_MS: '200' }
  })
  const first = await generate()
  assert.equal(first.status, 200)
  assert.equal(app.guard.stats().upstreams.llm!.state, 'open', 'three failures in a row opened the primary\'s breaker')
  const primaryBefore = llmCalls(primary).length
  const during = await generate()
  assert.deepEqual(during.body.warnings.map((w: { step: string }) => w.step), ['plan', 'sections'])
  assert.equal(llmCalls(primary).length, primaryBefore, 'no call reached the primary while its breaker was open')

  await sleep(250)
  const fallbackBefore = llmCalls(fallback).length
  // Half-open: the next posts' calls are the probes, and a majority of ten successes closes it.
  for (let i = 0; i < 2; i++) {
    const after = await generate()
    assert.equal(after.status, 200)
    assert.deepEqual(after.body.warnings, [])
  }
  assert.equal(llmCalls(fallback).length, fallbackBefore)
  assert.equal(app.guard.stats().upstreams.llm!.state, 'closed')
})

test('a half-open probe the primary fails is not retried there: one call to the primary, then straight to the fallback', async (t) => {
  const { primary, fallback, generate, app } = await chain(t, {
    primary: { faults: { llm: { status: 503 } } },
    env: { BREAKER_CONSECUTIVE_FAILURES: '3', BREAKER_OPEN_MS: '200', UPSTREAM_MAX_ATTEMPTS: '3' }
  })
  assert.equal((await generate()).status, 200)
  assert.equal(app.guard.stats().upstreams.llm!.state, 'open')

  await sleep(250)
  const before = { primary: llmCalls(primary).length, fallback: llmCalls(fallback).length }
  // Half-open: the plan is the first probe. The primary fails it once; a retry would have been a
  // second probe (and a third), each after its backoff, before the call could fall back.
  const probed = await generate()
  assert.equal(probed.status, 200)
  assert.deepEqual(probed.body.warnings.map((w: { step: string }) => w.step), ['plan', 'sections'])
  assert.equal(app.guard.stats().upstreams.llm!.state, 'half_open', 'one failure of ten probes decides nothing yet')
  assert.equal(llmCalls(primary).length - before.primary, 1 + GOOD_SECTIONS, 'each call tried the primary once: the plan, then each section as a probe')
  assert.equal(llmCalls(fallback).length - before.fallback, 1 + GOOD_SECTIONS)
})
