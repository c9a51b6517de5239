import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { suite, test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { createMemoryStore, createRedisStore, type IdempotencyStore } from '../../src/idempotency/store.ts'
import { startRedis } from '../redis.ts'

// The same behaviour from the in-memory store (one instance) and the Redis store (many).
const stores: Record<string, (t: TestContext) => Promise<IdempotencyStore>> = {
  memory: async () => createMemoryStore(),
  redis: async (t) => {
    const server = await startRedis(t)
    const client = new Redis(server.url, { lazyConnect: true })
    await client.connect()
    t.after(() => client.quit())
    return createRedisStore(client, 60_000)
  }
}

const OUTCOME = { status: 200, body: '{"id":"x"}' }

for (const [name, make] of Object.entries(stores)) {
  suite(`the ${name} idempotency store`, () => {
    test('the first claim owns the key; a second sees it running, with the first one\'s fingerprint', async (t) => {
      const store = await make(t)
      const first = await store.claim('k', 'fp-a', 5_000)
      assert.equal(first.state, 'claimed')
      assert.deepEqual(await store.claim('k', 'fp-b', 5_000), { state: 'running', fingerprint: 'fp-a' })
    })

    test('a completed key replays its outcome, with its fingerprint', async (t) => {
      const store = await make(t)
      const claim = await store.claim('k', 'fp', 5_000)
      assert.equal(claim.state, 'claimed')
      assert.equal(await store.complete('k', claim.token, OUTCOME, 5_000), true)
      assert.deepEqual(await store.claim('k', 'fp', 5_000), { state: 'done', fingerprint: 'fp', outcome: OUTCOME })
    })

    test('a released key can be claimed again, with a newer fencing token', async (t) => {
      const store = await make(t)
      const first = await store.claim('k', 'fp', 5_000)
      assert.equal(first.state, 'claimed')
      assert.equal(await store.release('k', first.token), true)
      const second = await store.claim('k', 'fp', 5_000)
      assert.equal(second.state, 'claimed')
      assert.ok(Number(second.token) > Number(first.token))
    })

    test('a lease that is not renewed lapses, and the key frees itself', async (t) => {
      const store = await make(t)
      assert.equal((await store.claim('k', 'fp', 200)).state, 'claimed')
      await sleep(350)
      assert.equal((await store.claim('k', 'fp', 200)).state, 'claimed')
    })

    test('a renewed lease holds past its first term', async (t) => {
      const store = await make(t)
      const claim = await store.claim('k', 'fp', 300)
      assert.equal(claim.state, 'claimed')
      for (let i = 0; i < 4; i++) {
        await sleep(150)
        assert.equal(await store.renew('k', claim.token, 300), true)
      }
      assert.equal((await store.claim('k', 'fp', 300)).state, 'running')
    })

    test('a stale holder can neither complete, renew nor release the key a newer request claimed', async (t) => {
      const store = await make(t)
      const stale = await store.claim('k', 'fp', 150)
      assert.equal(stale.state, 'claimed')
      await sleep(300)
      const fresh = await store.claim('k', 'fp', 5_000)
      assert.equal(fresh.state, 'claimed')
      assert.equal(await store.complete('k', stale.token, { status: 200, body: '"stale"' }, 5_000), false)
      assert.equal(await store.renew('k', stale.token, 5_000), false)
      assert.equal(await store.release('k', stale.token), false)
      assert.equal(await store.complete('k', fresh.token, OUTCOME, 5_000), true)
      assert.deepEqual(await store.claim('k', 'fp', 5_000), { state: 'done', fingerprint: 'fp', outcome: OUTCOME })
    })

    test('a completed record is not released or completed again by its own holder', async (t) => {
      const store = await make(t)
      const claim = await store.claim('k', 'fp', 5_000)
      assert.equal(claim.state, 'claimed')
      await store.complete('k', claim.token, OUTCOME, 5_000)
      assert.equal(await store.release('k', claim.token), false)
      assert.equal(await store.complete('k', claim.token, { status: 200, body: '"again"' }, 5_000), false)
      assert.deepEqual(await store.claim('k', 'fp', 5_000), { state: 'done', fingerprint: 'fp', outcome: OUTCOME })
    })

    test('a completed record is gone after its retention', async (t) => {
      const store = await make(t)
      const claim = await store.claim('k', 'fp', 5_000)
      assert.equal(claim.state, 'claimed')
      await store.complete('k', claim.token, OUTCOME, 200)
      await sleep(350)
      assert.equal((await store.claim('k', 'fp', 5_000)).state, 'claimed')
    })

    test('keys are independent', async (t) => {
      const store = await make(t)
      assert.equal((await store.claim('a', 'fp', 5_000)).state, 'claimed')
      assert.equal((await store.claim('b', 'fp', 5_000)).state, 'claimed')
    })
  })
}

test('the memory store keeps only its newest records, oldest dropped first', async () => {
  const store = createMemoryStore({ maxEntries: 2 })
  for (const key of ['a', 'b', 'c']) {
    const claim = await store.claim(key, 'fp', 5_000)
    assert.equal(claim.state, 'claimed')
    await store.complete(key, claim.token, OUTCOME, 5_000)
  }
  assert.equal((await store.claim('a', 'fp', 5_000)).state, 'claimed')
  assert.equal((await store.claim('c', 'fp', 5_000)).state, 'done')
})
