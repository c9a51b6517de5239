import assert from 'node:assert/strict'
import { test } from 'node:test'
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
  for (const step of ['draftMs', 'imageMs', 'sentimentMs', 'keywordsMs', 'refineMs', 'totalMs']) {
    assert.equal(typeof post.timings[step], 'number', step)
  }
  assert.deepEqual(post.warnings, [])
  // In simulator mode the language calls carry the simulated service account's token, fetched once.
  assert.deepEqual(simulator.stats().requests, { llm: 2, image: 1, sentiment: 1, entities: 1, metadata: 1, storage: 0 })
})

test('the steps run as a graph: refine waits for sentiment and keywords, the image overlaps refine', async (t) => {
  const { app, simulator } = await startStack(t, {
    simulator: {
      latency: { llm: { fixedMs: 40, jitterMs: 0 }, sentiment: { fixedMs: 40, jitterMs: 0 }, entities: { fixedMs: 60, jitterMs: 0 }, image: { fixedMs: 150, jitterMs: 0 } }
    }
  })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })
  assert.equal(response.statusCode, 200)

  const call = (endpoint: string, kind?: string) => {
    const found = simulator.calls.find((c) => c.endpoint === endpoint && (kind === undefined || c.kind === kind))
    assert.ok(found?.endedAt !== undefined, `${endpoint} ${kind ?? ''} was called and finished`)
    return { start: found.startedAt, end: found.endedAt }
  }
  const draft = call('llm', 'draft')
  const edit = call('llm', 'edit')
  const image = call('image')
  const sentiment = call('sentiment')
  const keywords = call('entities')

  for (const step of [image, sentiment, keywords]) assert.ok(step.start >= draft.end, 'starts after the draft')
  assert.ok(edit.start >= sentiment.end && edit.start >= keywords.end, 'refine starts after sentiment and keywords')
  assert.ok(image.start < edit.start && image.end > edit.start, 'the image runs alongside refine')
  // No step waits needlessly: the three branches start together, not one after another.
  assert.ok(Math.max(image.start, sentiment.start, keywords.start) - draft.end < 30)
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

test('a failing draft fails the request with the mapped error and the documented shape', async (t) => {
  const { app, simulator } = await startStack(t, { simulator: { faults: { llm: { status: 503 } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF, headers: { 'x-request-id': 'caller-42' } })

  assert.equal(response.statusCode, 502)
  assert.equal(response.headers['x-request-id'], 'caller-42')
  assert.deepEqual(response.json(), {
    error: { code: 'upstream_error', message: 'The llm upstream answered 503.', details: { upstream: 'llm', status: 503 } },
    requestId: 'caller-42'
  })
  assert.equal(simulator.stats().requests.image, 0, 'nothing after the draft started')
})

test('an LLM that sends no headers before the headers timeout is a 504', async (t) => {
  const { app } = await startStack(t, { env: { UPSTREAM_HEADERS_TIMEOUT_MS: '200' }, simulator: { faults: { llm: { hang: true } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 504)
  assert.equal(response.json().error.code, 'upstream_timeout')
})

test('a wrong-shaped final edit is retried, then a 502, never a 200 with fields missing', async (t) => {
  const { app, simulator } = await startStack(t, { simulator: { faults: { llm: { wrongShape: true, kind: 'edit' } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 502)
  assert.equal(response.json().error.code, 'upstream_bad_response')
  // UPSTREAM_MAX_ATTEMPTS (3): a fresh answer usually has the right shape, so it is asked again.
  assert.deepEqual(simulator.calls.filter((c) => c.endpoint === 'llm').map((c) => c.kind), ['draft', 'edit', 'edit', 'edit'])
})
