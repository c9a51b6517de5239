import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { startRedis } from '../redis.ts'
import { liveEnv, startServerProcess } from '../spawn.ts'

// Two service processes, one Redis and one simulator, all real, over loopback: what Cloud Run
// does with two instances behind one Memorystore.

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')
const LEASE_MS = 3_000

async function cluster (t: TestContext, env: Record<string, string> = {}) {
  const redis = await startRedis(t)
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const start = () => startServerProcess(t, { env: { ...liveEnv(simulator.origin), REDIS_URL: redis.url, CLAIM_LEASE_MS: String(LEASE_MS), ...env } })
  const a = start()
  const b = start()
  const origins = await Promise.all([a.listening, b.listening])
  const plans = () => simulator.calls.filter((call) => call.kind === 'plan').length
  return { redis, simulator, instances: [a, b], origins, plans }
}

async function post (origin: string, headers: Record<string, string> = {}, body: unknown = GOOD_BRIEF) {
  const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.statusCode, headers: response.headers, body: await response.body.json() as any }
}

test('the same key sent to both instances at once is generated once: one 200 and one 409; a retry on the other replays it', async (t) => {
  const { simulator, origins: [a, b], plans } = await cluster(t)
  simulator.setLatency('llm', { fixedMs: 300, jitterMs: 0 })
  const answers = await Promise.all([post(a!, { 'idempotency-key': 'both' }), post(b!, { 'idempotency-key': 'both' })])
  assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 409])
  assert.equal(plans(), 1)

  simulator.setLatency('llm', undefined)
  const winner = answers.find((answer) => answer.status === 200)!
  const callsBefore = simulator.calls.length
  for (const origin of [a!, b!]) {
    const retry = await post(origin, { 'idempotency-key': 'both' })
    assert.equal(retry.status, 200)
    assert.equal(retry.headers['idempotent-replayed'], 'true')
    assert.deepEqual(retry.body, winner.body)
  }
  assert.equal(simulator.calls.length, callsBefore, 'a replay makes no upstream call of any kind')
})

test('100 keys, each sent to both instances at once and retried on both: 100 posts generated, counted at the upstream', async (t) => {
  const { origins: [a, b], plans } = await cluster(t)
  const keys = Array.from({ length: 100 }, (_, i) => `retry-${i}`)
  const statuses: number[] = []
  // Ten at a time, so the run stays bounded; each key goes to both instances together, then again.
  for (let i = 0; i < keys.length; i += 10) {
    const batch = keys.slice(i, i + 10)
    const first = await Promise.all(batch.flatMap((key) => [post(a!, { 'idempotency-key': key }), post(b!, { 'idempotency-key': key })]))
    const retries = await Promise.all(batch.flatMap((key) => [post(b!, { 'idempotency-key': key }), post(a!, { 'idempotency-key': key })]))
    statuses.push(...[...first, ...retries].map((answer) => answer.status))
  }
  assert.equal(plans(), 100, 'duplicate posts generated')
  assert.ok(statuses.every((status) => status === 200 || status === 409), `only 200 and 409: ${[...new Set(statuses)]}`)
  assert.ok(statuses.filter((status) => status === 200).length >= 300, 'every retry after completion replays')
})

test('a caller\'s rate limit holds across both instances', async (t) => {
  const { origins: [a, b] } = await cluster(t, { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha256('key-a')}`, RATE_LIMIT_PER_MINUTE: '3' })
  const statuses = []
  for (const origin of [a!, b!, a!, b!]) statuses.push((await post(origin, { 'x-api-key': 'key-a' })).status)
  assert.deepEqual(statuses, [200, 200, 200, 429])
})

test('a caller\'s concurrency limit holds across both instances', async (t) => {
  const { simulator, origins: [a, b] } = await cluster(t, { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${sha256('key-a')}`, RATE_LIMIT_CONCURRENT: '2' })
  simulator.setLatency('llm', { fixedMs: 500, jitterMs: 0 })
  const running = [post(a!, { 'x-api-key': 'key-a' }), post(b!, { 'x-api-key': 'key-a' })]
  await sleep(150)
  const third = await post(a!, { 'x-api-key': 'key-a' })
  assert.equal(third.status, 429)
  assert.deepEqual((await Promise.all(running)).map((answer) => answer.status), [200, 200])
  assert.equal((await post(b!, { 'x-api-key': 'key-a' })).status, 200, 'the slots came back')
})

test('when the instance holding a claim is killed, the key frees within the lease and the retry runs', async (t) => {
  const { simulator, instances: [holder], origins: [a, b], plans } = await cluster(t)
  simulator.setLatency('llm', { fixedMs: 60_000, jitterMs: 0 })
  post(a!, { 'idempotency-key': 'orphan' }).catch(() => {})
  // Wait until the claim is visible from the other instance.
  let conflict
  for (let i = 0; i < 50 && conflict?.status !== 409; i++) {
    await sleep(50)
    conflict = await post(b!, { 'idempotency-key': 'orphan' })
  }
  assert.equal(conflict?.status, 409)

  process.kill(holder!.child.pid!, 'SIGKILL')
  const killedAt = performance.now()
  await holder!.exited
  simulator.setLatency('llm', undefined)
  let retry
  while (performance.now() - killedAt < LEASE_MS + 3_000) {
    retry = await post(b!, { 'idempotency-key': 'orphan' })
    if (retry.status !== 409) break
    await sleep(100)
  }
  const freedAfterMs = performance.now() - killedAt
  t.diagnostic(`key freed ${Math.round(freedAfterMs)} ms after its holder was killed (lease ${LEASE_MS} ms)`)
  assert.equal(retry?.status, 200)
  assert.equal(retry?.headers['idempotent-replayed'], undefined)
  assert.ok(freedAfterMs <= LEASE_MS + 1_000, `freed after ${Math.round(freedAfterMs)} ms, lease ${LEASE_MS} ms`)
  assert.equal(plans(), 2)
})

test('Redis stopped mid-run and started again: every request gets its documented answer, and the service recovers without a restart', async (t) => {
  const { redis, instances, origins: [a, b] } = await cluster(t)
  const ready = async (origin: string) => (await request(`${origin}/readyz`)).statusCode
  assert.equal(await ready(a!), 200)

  const answers: Array<{ keyed: boolean, during: boolean, status: number, code: string | undefined }> = []
  let outage = false
  let n = 0
  const load = async (until: () => boolean) => {
    while (!until()) {
      const keyed = n % 2 === 0
      const origin = n % 4 < 2 ? a! : b!
      const during = outage
      const answer = await post(origin, keyed ? { 'idempotency-key': `during-${n}` } : {})
      n++
      answers.push({ keyed, during, status: answer.status, code: answer.body.error?.code })
    }
  }
  let stopped = false
  const steady = load(() => stopped)
  await sleep(300)
  await redis.stop()
  outage = true
  await sleep(1_500)
  assert.equal(await ready(a!), 503)
  outage = false
  await redis.start()
  // Reconnection backs off to at most 2 s between attempts.
  const backBy = performance.now() + 10_000
  while ((await ready(a!) !== 200 || await ready(b!) !== 200) && performance.now() < backBy) await sleep(100)
  stopped = true
  await steady

  for (const answer of answers) {
    if (answer.status === 200) continue
    assert.ok(answer.keyed && answer.status === 503 && answer.code === 'idempotency_unavailable', `undocumented answer: ${JSON.stringify(answer)}`)
  }
  assert.ok(answers.some((answer) => answer.during && answer.keyed && answer.status === 503), 'keyed requests met the outage')
  assert.ok(answers.some((answer) => answer.during && !answer.keyed && answer.status === 200), 'requests without a key were served through it')
  for (const instance of instances) assert.equal(instance.child.exitCode, null, 'no instance exited')

  const after = await post(b!, { 'idempotency-key': 'after-restart' })
  assert.equal(after.status, 200)
  assert.equal((await post(a!, { 'idempotency-key': 'after-restart' })).headers['idempotent-replayed'], 'true')
})
