import assert from 'node:assert/strict'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import Fastify from 'fastify'
import { request } from 'undici'
import errorResponses from '../../src/plugins/error-responses.ts'
import inFlight from '../../src/plugins/in-flight.ts'
import redis from '../../src/plugins/redis.ts'

// Why plugins/in-flight.ts listens on the reply's close and not on request.signal. If Fastify
// changes this, the test fails, and request.signal can replace our own controller.
test('Fastify aborts request.signal once a POST body has been read, with the caller still waiting', async (t) => {
  const app = Fastify({ handlerTimeout: 5_000 })
  t.after(() => app.close())
  app.post('/echo', async (req) => {
    await sleep(100)
    return { aborted: req.signal.aborted }
  })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })

  const response = await request(`${origin}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })

  assert.deepEqual(await response.body.json(), { aborted: true })
})

test('a caller that left after sending its body but before the handler started gets an already-aborted signal', async (t) => {
  const app = Fastify({ logger: false })
  t.after(() => app.close())
  await app.register(errorResponses)
  await app.register(redis, { url: undefined, caFile: undefined, commandTimeoutMs: 500 })
  await app.register(inFlight, { maxConcurrent: 10, maxPerCaller: 10, leaseMs: 30_000 })
  let resolveAborted: (value: boolean) => void
  const aborted = new Promise<boolean>((resolve) => { resolveAborted = resolve })
  app.post('/late', {
    // Holds the request between its body and its handler until the caller has gone.
    preHandler: async (request, reply) => { if (!reply.raw.closed) await once(reply.raw, 'close') }
  }, async (request, reply) => {
    resolveAborted(app.inFlight.start(reply, 60_000).aborted)
    return {}
  })
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })

  const controller = new AbortController()
  const sent = request(`${origin}/late`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: controller.signal })
  await sleep(50)
  controller.abort()
  await assert.rejects(sent)
  assert.equal(await aborted, true)
  assert.equal(app.inFlight.size, 0, 'and it is not counted as in flight')
})
