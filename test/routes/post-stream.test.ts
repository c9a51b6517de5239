import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { PostEvents } from '../../src/generation/pipeline.ts'
import { streamPost } from '../../src/routes/post-stream.ts'
import { StartGate } from '../../src/routes/start-gate.ts'

/** A reply whose socket never drains: every write after the first waits forever, as for a reader that stopped reading. */
function stuckReply () {
  const written: string[] = []
  let destroyed = false
  const reply = {
    elapsedTime: 1,
    header: () => reply,
    raw: { write: () => true, destroy: () => { destroyed = true } },
    sse: {
      get isConnected () { return !destroyed },
      async send (message: { event: string }) {
        written.push(message.event)
        if (written.length > 1) await new Promise(() => {})
      }
    }
  } as unknown as FastifyReply
  const request = { id: 'r1', method: 'POST', url: '/generate', headers: {}, ip: '127.0.0.1', raw: { httpVersion: '1.1' }, log: { warn () {}, error () {}, info () {} } } as unknown as FastifyRequest
  return { reply, request, written, destroyed: () => destroyed }
}

test('a reader that stops reading: what waits for it is bounded, and past the bound its stream is closed and the work stopped', async () => {
  const { reply, request, destroyed } = stuckReply()
  let deltasOffered = 0
  let stoppedAt: number | undefined
  const run = async (events: PostEvents) => {
    events.plan({ title: 't', metaDescription: 'm', sections: ['a'] })
    // A post keeps writing; each delta is ~100 bytes, the bound 4 KiB.
    for (let i = 0; i < 1_000; i++) {
      events.delta(0, 'x'.repeat(80))
      deltasOffered++
      if (destroyed()) { stoppedAt = i; break }
      await sleep(0)
    }
    throw new Error('the caller is gone')
  }
  const done = streamPost(request, reply, { heartbeatMs: 60_000, maxBufferedBytes: 4_096 }, 'post-1', run, new StartGate(50))

  await Promise.race([done, sleep(2_000)])
  assert.ok(destroyed(), 'the connection was closed')
  assert.ok(stoppedAt !== undefined && stoppedAt < 60, `closed after ${deltasOffered} deltas: about 4 KiB held, not the whole post`)
  assert.equal(reply.streamEnding, 'client_gone')
})
