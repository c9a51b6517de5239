import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { suite, test, type TestContext } from 'node:test'
import { createParser } from 'eventsource-parser'
import { request } from 'undici'
import type { SimulatorOptions } from '../../src/simulator/server.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'
import { startRedis } from '../redis.ts'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const SLOW_PLAN = { fixedMs: 600, jitterMs: 0 }

// Every behaviour against both stores: this instance's memory (no REDIS_URL) and a real Redis.
const modes: Record<string, (t: TestContext) => Promise<Record<string, string>>> = {
  memory: async () => ({}),
  redis: async (t) => ({ REDIS_URL: (await startRedis(t)).url })
}

async function stack (t: TestContext, env: Record<string, string>, simulator: SimulatorOptions = {}) {
  const started = await startStack(t, { env, simulator })
  const origin = await started.app.listen({ port: 0, host: '127.0.0.1' })
  const plans = () => started.simulator.calls.filter((call) => call.kind === 'plan').length
  const post = async (headers: Record<string, string>, body: unknown = GOOD_BRIEF) => {
    const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    return { status: response.statusCode, headers: response.headers, body: await response.body.json() as any }
  }
  return { ...started, origin, plans, post }
}

for (const [name, redisEnv] of Object.entries(modes)) {
  suite(`Idempotency-Key with the ${name} store`, () => {
    test('a retry with the same key replays the stored post, marked Idempotent-Replayed, with no upstream call', async (t) => {
      const { post, plans } = await stack(t, await redisEnv(t))
      const first = await post({ 'idempotency-key': 'order-1' })
      assert.equal(first.status, 200)
      assert.equal(first.headers['idempotent-replayed'], undefined)
      const callsAfterFirst = plans()

      const again = await post({ 'idempotency-key': 'order-1' })
      assert.equal(again.status, 200)
      assert.equal(again.headers['idempotent-replayed'], 'true')
      assert.deepEqual(again.body, first.body)
      assert.equal(plans(), callsAfterFirst)
    })

    test('the key\'s quoted (structured-field) and bare forms are one key, and field order does not change the request', async (t) => {
      const { post, plans } = await stack(t, await redisEnv(t))
      await post({ 'idempotency-key': '"a-key\\"quoted"' }, { topic: GOOD_BRIEF.topic, audience: GOOD_BRIEF.audience, keywords: GOOD_BRIEF.keywords })
      const again = await post({ 'idempotency-key': 'a-key"quoted' }, { keywords: GOOD_BRIEF.keywords, audience: GOOD_BRIEF.audience, topic: GOOD_BRIEF.topic })
      // A bare key may not carry a quote: this one is refused, so the quoted form is the only way to it.
      assert.equal(again.status, 400)
      const bare = await post({ 'idempotency-key': 'plain-key' })
      const quoted = await post({ 'idempotency-key': '"plain-key"' }, { keywords: GOOD_BRIEF.keywords, topic: GOOD_BRIEF.topic, audience: GOOD_BRIEF.audience })
      assert.equal(bare.status, 200)
      assert.equal(quoted.headers['idempotent-replayed'], 'true')
      assert.equal(plans(), 2)
    })

    test('the same key with a different request is 422, checked before 409 while the first still runs', async (t) => {
      const { post, simulator } = await stack(t, await redisEnv(t))
      simulator.setLatency('llm', SLOW_PLAN)
      const running = post({ 'idempotency-key': 'k' })
      await new Promise((resolve) => setTimeout(resolve, 150))
      const other = await post({ 'idempotency-key': 'k' }, { ...GOOD_BRIEF, topic: 'something else entirely' })
      assert.equal(other.status, 422)
      assert.equal(other.body.error.code, 'idempotency_key_reused')
      assert.equal((await running).status, 200)
      const afterwards = await post({ 'idempotency-key': 'k' }, { ...GOOD_BRIEF, topic: 'something else entirely' })
      assert.equal(afterwards.status, 422)
    })

    test('the same key while the first still runs is 409 request_in_progress with Retry-After; Prefer: wait=N waits for the post', async (t) => {
      const { post, simulator, plans } = await stack(t, await redisEnv(t))
      simulator.setLatency('llm', SLOW_PLAN)
      const running = post({ 'idempotency-key': 'k' })
      await new Promise((resolve) => setTimeout(resolve, 150))
      const conflict = await post({ 'idempotency-key': 'k' })
      assert.equal(conflict.status, 409)
      assert.equal(conflict.body.error.code, 'request_in_progress')
      assert.match(String(conflict.headers['retry-after']), /^\d+$/)

      const waited = await post({ 'idempotency-key': 'k', prefer: 'wait=20' })
      const first = await running
      assert.equal(waited.status, 200)
      assert.equal(waited.headers['idempotent-replayed'], 'true')
      assert.deepEqual(waited.body, first.body)
      assert.equal(plans(), 1)
    })

    test('a keyed request whose caller leaves runs on and stores its post: the retry waits for it, and nothing is generated twice', async (t) => {
      const { origin, post, simulator, plans } = await stack(t, await redisEnv(t))
      simulator.setLatency('llm', { fixedMs: 400, jitterMs: 0 })
      const controller = new AbortController()
      const gone = request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'left' }, body: JSON.stringify(GOOD_BRIEF), signal: controller.signal })
      await new Promise((resolve) => setTimeout(resolve, 150))
      controller.abort()
      await assert.rejects(gone)
      const retry = await post({ 'idempotency-key': 'left', prefer: 'wait=20' })
      assert.equal(retry.status, 200)
      assert.equal(retry.headers['idempotent-replayed'], 'true')
      assert.equal(plans(), 1)
      assert.equal(simulator.calls.filter((call) => call.aborted).length, 0, 'no upstream call was aborted')
    })

    test('a failed request (5xx) frees its key, and the retry runs again', async (t) => {
      const { post, simulator, plans } = await stack(t, await redisEnv(t))
      simulator.setFault('llm', { status: 400 })
      const failed = await post({ 'idempotency-key': 'k' })
      assert.equal(failed.status, 502)
      simulator.setFault('llm', undefined)
      const before = plans()
      const retry = await post({ 'idempotency-key': 'k' })
      assert.equal(retry.status, 200)
      assert.equal(retry.headers['idempotent-replayed'], undefined)
      assert.equal(plans(), before + 1)
    })

    test('a keyed stream asked again replays as accepted then result; a keyed JSON request is a different request (422)', async (t) => {
      const { origin, post, plans } = await stack(t, await redisEnv(t))
      const first = await stream(origin, { 'idempotency-key': 'sse-1' })
      assert.deepEqual(first.events.map((e) => e.event).at(-1), 'result')
      const before = plans()
      const again = await stream(origin, { 'idempotency-key': 'sse-1' })
      assert.equal(again.headers['idempotent-replayed'], 'true')
      assert.deepEqual(again.events.map((e) => e.event), ['accepted', 'result'])
      assert.equal(again.events[0]!.data.id, first.events.at(-1)!.data.id)
      assert.deepEqual(again.events[1]!.data, first.events.at(-1)!.data)
      assert.equal(plans(), before)
      assert.equal((await post({ 'idempotency-key': 'sse-1' })).status, 422)
    })

    test('a keyed stream whose key is still running gets 409 before the stream starts', async (t) => {
      const { origin, post, simulator } = await stack(t, await redisEnv(t))
      simulator.setLatency('llm', SLOW_PLAN)
      const running = post({ 'idempotency-key': 'k' }).catch(() => {})
      const streamed = stream(origin, { 'idempotency-key': 'k' })
      const conflict = await post({ 'idempotency-key': 'k' })
      assert.equal(conflict.status, 409)
      await running
      const { status, events } = await streamed
      // The stream was a different request (SSE mode): 422, before any event.
      assert.equal(status, 422)
      assert.deepEqual(events, [])
    })
  })
}

/** A streamed request read with a real SSE parser. */
async function stream (origin: string, headers: Record<string, string>) {
  const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers }, body: JSON.stringify(GOOD_BRIEF) })
  const events: Array<{ event: string, data: any }> = []
  const parser = createParser({ onEvent: (event) => events.push({ event: event.event ?? 'message', data: JSON.parse(event.data) }) })
  if (response.headers['content-type'] !== 'text/event-stream') {
    await response.body.dump()
    return { status: response.statusCode, headers: response.headers, events }
  }
  for await (const chunk of response.body) parser.feed(String(chunk))
  return { status: response.statusCode, headers: response.headers, events }
}

test('hostile keys get 400 in the documented shape, before anything is looked up', async (t) => {
  const { post, plans } = await stack(t, {})
  const hostile = {
    'too long': 'k'.repeat(256),
    'control character': 'abc\tdef',
    'unbalanced quote': '"abc',
    'quote inside a quoted key': '"a"b"',
    'stray backslash escape': '"a\\nb"',
    'empty quoted key': '""'
  }
  for (const [what, key] of Object.entries(hostile)) {
    const response = await post({ 'idempotency-key': key })
    assert.equal(response.status, 400, what)
    assert.equal(response.body.error.code, 'invalid_request', what)
    assert.deepEqual(response.body.error.details[0].path, ['headers', 'idempotency-key'], what)
  }
  assert.equal((await post({ 'idempotency-key': 'k'.repeat(255) })).status, 200)
  assert.equal(plans(), 1)
})

test('one caller never reads another\'s result: the same key from another API key is a miss in that caller\'s own scope', async (t) => {
  const { post, plans } = await stack(t, { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha256('key-a')},b:${sha256('key-b')}` })
  const mine = await post({ 'x-api-key': 'key-a', 'idempotency-key': 'shared-key' })
  const theirs = await post({ 'x-api-key': 'key-b', 'idempotency-key': 'shared-key' })
  assert.equal(mine.status, 200)
  assert.equal(theirs.status, 200)
  assert.equal(theirs.headers['idempotent-replayed'], undefined)
  assert.notEqual(theirs.body.id, mine.body.id)
  assert.equal(plans(), 2)
})

test('an inline image is not kept: the replay has no image, and a warning says why', async (t) => {
  const { post } = await stack(t, {}, { imageFormat: 'b64' })
  const first = await post({ 'idempotency-key': 'img' })
  assert.match(first.body.image.url, /^data:image\/png;base64,/)
  const again = await post({ 'idempotency-key': 'img' })
  assert.equal(again.body.image, null)
  assert.deepEqual(again.body.warnings.map((w: { code: string }) => w.code), [...first.body.warnings.map((w: { code: string }) => w.code), 'image_not_retained'])
})
