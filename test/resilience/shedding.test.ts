import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { liveEnv } from '../spawn.ts'

// The event loop of this process is the app's: blocking it here is what a burst of CPU work in
// the service does. The request is one with a bad body: 400 when it is let in, 503 when shed, so
// no upstream is needed to tell the two apart.
async function app (t: TestContext) {
  // No upstream is ever called: the port is one nothing listens on.
  const config = loadConfig({ LOG_LEVEL: 'silent', ...liveEnv('http://127.0.0.1:9'), MAX_EVENT_LOOP_DELAY_MS: '100', EVENT_LOOP_DELAY_WINDOW_MS: '2500' })
  const instance = await buildApp({ config, upstreams: config.upstreams! })
  await instance.ready()
  t.after(() => instance.close())
  const post = async () => {
    const response = await instance.inject({ method: 'POST', url: '/generate', payload: {} })
    return { status: response.statusCode, code: response.json().error.code, reason: response.json().error.details?.reason }
  }
  return { post, health: async () => (await instance.inject({ url: '/healthz' })).statusCode }
}

function block (ms: number) {
  const until = performance.now() + ms
  while (performance.now() < until);
}

/** Keeps the loop ninety-odd per cent busy for `ms`: every timer runs late, as under a CPU burst. */
async function saturate (ms: number) {
  const until = performance.now() + ms
  while (performance.now() < until) {
    block(450)
    await sleep(1)
  }
}

test('a burst that saturates the loop for a second and a half, far past the delay limit, is not shed: the loop clears it', async (t) => {
  const { post } = await app(t)
  await sleep(1_100)
  await saturate(1_500)
  // Ask at once and over the next two seconds, while the samplers catch up.
  const answers = []
  for (let i = 0; i < 8; i++) {
    answers.push((await post()).status)
    await sleep(250)
  }
  assert.deepEqual([...new Set(answers)], [400], 'let in every time, never 503')
})

test('a loop that stays blocked past the window sheds new work with 503 overloaded (reason eventLoopDelay), spares /healthz, and lets work in again once it recovers', async (t) => {
  const { post, health } = await app(t)
  // Busy for five seconds: every sample over the 100 ms limit, for longer than the 2.5 s window.
  await saturate(5_000)
  const shed = await post()
  assert.deepEqual(shed, { status: 503, code: 'overloaded', reason: 'eventLoopDelay' })
  assert.equal(await health(), 200, 'liveness is never refused')

  // Two samples later (one may still cover the busy time), the delay is under the limit again.
  await sleep(2_200)
  assert.equal((await post()).status, 400, 'a calm loop lets work in again')
})
