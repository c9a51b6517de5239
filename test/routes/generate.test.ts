import assert from 'node:assert/strict'
import { test } from 'node:test'
import { plainText } from '../../src/generation/prompts.ts'
import { analyzeSentiment } from '../../src/simulator/sentiment.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

test('POST /generate returns a complete post built from real calls to the simulator', async (t) => {
  const { app, simulator } = await startStack(t)

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 200)
  const post = response.json()
  assert.match(post.id, /^[0-9a-f-]{36}$/)
  assert.match(post.title, /connection pooling/i)
  assert.match(post.slug, /^[a-z0-9]+(-[a-z0-9]+)*$/)
  assert.ok(post.metaDescription.length > 0 && post.metaDescription.length <= 160)
  assert.match(post.body, /^## /m)
  assert.match(post.image.url, new RegExp(`^${simulator.origin}/__sim/images/[0-9a-f]+\\.svg$`))
  assert.ok(post.image.alt.length > 0)
  assert.ok(post.sentiment.score >= -1 && post.sentiment.score <= 1)
  assert.ok(['positive', 'neutral', 'negative'].includes(post.sentiment.label))
  assert.ok(post.keywords.length > 0 && post.keywords.length <= 8)
  assert.ok(post.usage.totalTokens === post.usage.promptTokens + post.usage.completionTokens && post.usage.totalTokens > 0)
  for (const step of ['planMs', 'sectionsMs', 'imageMs', 'sentimentMs', 'keywordsMs', 'totalMs']) {
    assert.equal(typeof post.timings[step], 'number', step)
  }
  assert.deepEqual(post.warnings, [])
  // medium: a plan and four sections. In simulator mode the language calls carry the simulated
  // service account's token, fetched once.
  assert.deepEqual(simulator.stats().requests, { llm: 5, image: 1, sentiment: 1, entities: 1, metadata: 1, storage: 0 })
  assert.equal(post.body.match(/^## /gm).length, 4, 'one heading per planned section, from the plan')
})

test('the steps run as a graph: the image starts with the plan, the sections in parallel after it, the analysis on the assembled body', async (t) => {
  const { app, simulator } = await startStack(t, {
    simulator: {
      latency: { llm: { fixedMs: 40, jitterMs: 0 }, sentiment: { fixedMs: 40, jitterMs: 0 }, entities: { fixedMs: 60, jitterMs: 0 }, image: { fixedMs: 250, jitterMs: 0 } }
    }
  })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: { ...GOOD_BRIEF, length: 'long' } })
  assert.equal(response.statusCode, 200)

  const calls = (endpoint: string, kind?: string) => simulator.calls.filter((c) => c.endpoint === endpoint && (kind === undefined || c.kind === kind))
  const [plan] = calls('llm', 'plan')
  const sections = calls('llm', 'section')
  const [image] = calls('image')
  const [sentiment] = calls('sentiment')
  const [keywords] = calls('entities')
  assert.equal(sections.length, 6)
  assert.ok(image!.startedAt < plan!.endedAt!, 'the image does not wait for the plan')
  for (const section of sections) assert.ok(section.startedAt >= plan!.endedAt!, 'sections start after the plan')
  // In parallel: all six start before the first one ends.
  assert.ok(Math.max(...sections.map((c) => c.startedAt)) < Math.min(...sections.map((c) => c.endedAt!)), 'the sections run in parallel')
  for (const analysis of [sentiment!, keywords!]) assert.ok(analysis.startedAt >= Math.max(...sections.map((c) => c.endedAt!)), 'analysis waits for the whole body')
  const post = response.json()
  assert.ok(post.timings.totalMs >= post.timings.imageMs, 'the post waits for its image')
})

test('sentiment and keywords describe the body that is returned, and the prompts ask for the lengths documented', async (t) => {
  const { app, simulator } = await startStack(t)
  for (const [length, sections, words] of [['short', 3, 600], ['medium', 4, 1_200], ['long', 6, 2_000]] as const) {
    const response = await app.inject({ method: 'POST', url: '/generate', payload: { ...GOOD_BRIEF, length } })
    const post = response.json()
    assert.equal(post.body.match(/^## /gm).length, sections, length)
    const written = post.body.split(/\s+/).length
    assert.ok(Math.abs(written - words) <= 0.25 * words, `${length}: ${written} words for ${words}`)
  }
  // The simulator scores what it is sent: the same score for the returned body means it was sent.
  const post = (await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })).json()
  assert.equal(post.sentiment.score, analyzeSentiment(plainText(post.body)).score)
  assert.ok(simulator.stats().requests.sentiment > 0)
})

test('a failing image step is a warning, not a failure', async (t) => {
  const { app, simulator } = await startStack(t, { simulator: { faults: { image: { status: 500 } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 200)
  const post = response.json()
  assert.equal(post.image, null)
  assert.ok(post.sentiment !== null && post.keywords.length > 0)
  assert.deepEqual(post.warnings, [{ step: 'image', code: 'upstream_error', message: 'The image upstream answered 500.' }])
  assert.equal(simulator.stats().requests.image, 3, 'a 500 is retried: three attempts, then the warning')
})

test('sentiment and keywords failures degrade to warnings as well', async (t) => {
  const { app } = await startStack(t, { simulator: { faults: { sentiment: { malformed: true }, entities: { reset: 'headers' } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 200)
  const post = response.json()
  assert.equal(post.sentiment, null)
  assert.deepEqual(post.keywords, [])
  assert.deepEqual(post.warnings.map((w: { step: string, code: string }) => [w.step, w.code]).sort(), [
    ['keywords', 'upstream_unavailable'], ['sentiment', 'upstream_bad_response']
  ])
})

test('image: false skips the image call and reports no image time', async (t) => {
  const { app, simulator } = await startStack(t)

  const response = await app.inject({ method: 'POST', url: '/generate', payload: { ...GOOD_BRIEF, image: false } })

  assert.equal(response.statusCode, 200)
  assert.equal(response.json().image, null)
  assert.equal(response.json().timings.imageMs, null)
  assert.equal(simulator.stats().requests.image, 0)
})

test('a failing plan fails the request with the mapped error and the documented shape', async (t) => {
  const { app, simulator } = await startStack(t, { simulator: { faults: { llm: { status: 503 } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'x-request-id': 'caller-42' } })

  assert.equal(response.statusCode, 502)
  assert.equal(response.headers['x-request-id'], 'caller-42')
  assert.deepEqual(response.json(), {
    error: { code: 'upstream_error', message: 'The llm upstream answered 503.', details: { upstream: 'llm', status: 503 } },
    requestId: 'caller-42'
  })
  assert.equal(simulator.stats().requests.llm, 3, 'the plan was tried three times, and no section started')
})

test('an LLM that sends no headers before the headers timeout is a 504', async (t) => {
  const { app } = await startStack(t, { env: { UPSTREAM_HEADERS_TIMEOUT_MS: '200' }, simulator: { faults: { llm: { hang: true } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 504)
  assert.equal(response.json().error.code, 'upstream_timeout')
})

test('a wrong-shaped plan is retried, then a 502, never a 200 with fields missing', async (t) => {
  const { app, simulator } = await startStack(t, { simulator: { faults: { llm: { wrongShape: true, kind: 'plan' } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 502)
  assert.equal(response.json().error.code, 'upstream_bad_response')
  // UPSTREAM_MAX_ATTEMPTS (3): a fresh answer usually has the right shape, so it is asked again.
  assert.deepEqual(simulator.calls.filter((c) => c.endpoint === 'llm').map((c) => c.kind), ['plan', 'plan', 'plan'])
})
