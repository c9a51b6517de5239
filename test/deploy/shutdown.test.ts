import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { request, type Dispatcher } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { freePort, liveEnv, PRODUCTION_ARGS, startServerProcess } from '../spawn.ts'

const post = (origin: string) => request(`${origin}/generate`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF)
})

async function until (check: () => boolean, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs
  while (!check() && performance.now() < deadline) await sleep(10)
  return check()
}

test('on SIGTERM, in-flight requests finish, new ones get 503 with Connection: close, and the process exits 0 with every upstream socket closed', async (t) => {
  const slow = { fixedMs: 300, jitterMs: 0 }
  const simulator = await startSimulator({ latency: { llm: slow, sentiment: slow, entities: slow, image: slow } })
  t.after(() => simulator.close())
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), SHUTDOWN_GRACE_MS: '5000' } })
  const origin = await server.listening
  // A proxy that pipelines: the second request on this connection is already sent when SIGTERM
  // arrives, and is read only once the first has been answered, while the server is closing.
  const { port } = new URL(origin)
  const socket = connect(Number(port), '127.0.0.1')
  t.after(() => socket.destroy())
  let raw = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { raw += chunk })
  const socketClosed = once(socket, 'close')
  const body = JSON.stringify(GOOD_BRIEF)
  socket.write(`POST /generate HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)

  const answer = (response: Dispatcher.ResponseData) => response.body.json().then((json) => ({ status: response.statusCode, body: json as { title?: string } }))
  const inFlight = Array.from({ length: 4 }, () => post(origin).then(answer))
  assert.ok(await until(() => simulator.stats().requests.llm >= 5, 2_000), 'the five requests reached the LLM')
  const signalledAt = performance.now()
  process.kill(server.child.pid!, 'SIGTERM')
  await sleep(50)
  socket.write('GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n')
  await assert.rejects(post(origin), { code: 'ECONNREFUSED' }, 'new connections are refused')

  for (const result of await Promise.all(inFlight)) {
    assert.equal(result.status, 200)
    assert.match(result.body.title ?? '', /connection pooling/i)
  }
  await socketClosed
  const [first, second] = raw.split(/(?=HTTP\/1\.1 )/)
  assert.match(first ?? '', /^HTTP\/1\.1 200 /, 'the pipelined in-flight request completed')
  assert.match(second ?? '', /^HTTP\/1\.1 503 /, 'the request read after SIGTERM got 503')
  assert.match(second ?? '', /\r\nconnection: close\r\n/i)
  assert.match(second ?? '', /\r\nretry-after: 1\r\n/i)
  assert.match(second ?? '', /"code":"shutting_down"/)
  const [code] = await server.exited
  assert.equal(code, 0)
  assert.ok(performance.now() - signalledAt < 5_000, 'exited within the grace period')
  assert.ok(await until(() => simulator.stats().connections.open === 0, 1_000), 'the simulator sees every connection closed')
})

test('past SHUTDOWN_GRACE_MS, in-flight upstream calls are aborted, callers get 503, and the exit is still 0', async (t) => {
  const simulator = await startSimulator({ faults: { llm: { hang: true } } })
  t.after(() => simulator.close())
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), SHUTDOWN_GRACE_MS: '400' } })
  const origin = await server.listening

  const stuck = Array.from({ length: 3 }, () => post(origin).then(async (response) => ({ status: response.statusCode, retryAfter: response.headers['retry-after'], body: await response.body.json() as { error: { code: string } } })))
  assert.ok(await until(() => simulator.stats().inFlight === 3, 2_000))
  const signalledAt = performance.now()
  process.kill(server.child.pid!, 'SIGTERM')

  for (const result of await Promise.all(stuck)) {
    assert.equal(result.status, 503)
    assert.equal(result.body.error.code, 'shutting_down')
    assert.equal(result.retryAfter, '1')
  }
  const [code] = await server.exited
  assert.equal(code, 0)
  assert.ok(performance.now() - signalledAt < 1_900, 'grace, abort, pool close and flush fit well inside Cloud Run\'s 10 s')
  assert.ok(await until(() => simulator.stats().inFlight === 0 && simulator.stats().connections.open === 0, 1_000))
})

test('a second signal exits at once', async (t) => {
  const simulator = await startSimulator({ faults: { llm: { hang: true } } })
  t.after(() => simulator.close())
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), SHUTDOWN_GRACE_MS: '8000' } })
  const origin = await server.listening
  post(origin).catch(() => {})
  assert.ok(await until(() => simulator.stats().inFlight === 1, 2_000))

  process.kill(server.child.pid!, 'SIGTERM')
  await sleep(100)
  const second = performance.now()
  process.kill(server.child.pid!, 'SIGTERM')
  const [code] = await server.exited
  assert.equal(code, 1)
  assert.ok(performance.now() - second < 1_000)
})
