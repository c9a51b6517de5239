import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { freePort, liveEnv, PRODUCTION_ARGS, startServerProcess } from '../spawn.ts'

test('logs are Cloud Logging JSON with an httpRequest access line, and no configured or sent secret appears in stdout or stderr', async (t) => {
  const simulator = await startSimulator({ faults: { sentiment: { status: 503 } } })
  t.after(() => simulator.close())
  const env = { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), LOG_LEVEL: 'debug', LOG_REDACT_HEADERS: 'x-caller-token' }
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env })
  const origin = await server.listening

  const response = await request(`${origin}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer caller-SECRET-a1b2', 'x-caller-token': 'caller-SECRET-c3d4', 'user-agent': 'logs-test' },
    body: JSON.stringify(GOOD_BRIEF)
  })
  assert.equal(response.statusCode, 200)
  await response.body.dump()
  const failing = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic":' })
  await failing.body.dump()
  process.kill(server.child.pid!, 'SIGTERM')
  await server.exited

  const { stdout, stderr } = server.output()
  const lines = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line))
  for (const line of lines) {
    assert.ok(['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'].includes(line.severity), `severity on ${JSON.stringify(line)}`)
    assert.equal(typeof line.message, 'string')
    assert.equal('level' in line || 'msg' in line, false)
  }
  const access = lines.find((line) => line.httpRequest?.requestUrl === '/generate' && line.httpRequest.status === 200)
  assert.deepEqual(Object.keys(access.httpRequest).sort(), ['latency', 'protocol', 'remoteIp', 'requestMethod', 'requestUrl', 'responseSize', 'status', 'userAgent'])
  assert.match(access.httpRequest.latency, /^\d+\.\d{3}s$/)
  assert.equal(access.httpRequest.userAgent, 'logs-test')

  const secrets = [env.LLM_API_KEY, env.IMAGE_API_KEY, env.LANGUAGE_API_KEY, 'caller-SECRET-a1b2', 'caller-SECRET-c3d4']
  for (const secret of secrets) {
    assert.equal(stdout.includes(secret) || stderr.includes(secret), false, `${secret} is not in the output`)
  }
  assert.equal(stdout.includes(GOOD_BRIEF.topic), false, 'no prompt or generated text in the logs by default')
})

test('LOG_PROMPTS=true logs each prompt for debugging, with credentials still redacted', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const env = { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()), LOG_PROMPTS: 'true' }
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env })
  const origin = await server.listening

  const response = await request(`${origin}/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer caller-SECRET-e5f6' }, body: JSON.stringify(GOOD_BRIEF)
  })
  await response.body.dump()
  process.kill(server.child.pid!, 'SIGTERM')
  await server.exited

  const { stdout, stderr } = server.output()
  const prompts = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).filter((line) => line.message === 'LLM prompt (LOG_PROMPTS)')
  assert.equal(prompts.length, 5, 'the plan and the four sections of a medium post')
  assert.ok(stdout.includes(GOOD_BRIEF.topic))
  for (const secret of [env.LLM_API_KEY, env.IMAGE_API_KEY, env.LANGUAGE_API_KEY, 'caller-SECRET-e5f6']) {
    assert.equal(stdout.includes(secret) || stderr.includes(secret), false, `${secret} is not in the output`)
  }
})

test('a caller that leaves mid-request gets one access line with status 499, at INFO, and no error line', async (t) => {
  const simulator = await startSimulator({ latency: { llm: { fixedMs: 2_000, jitterMs: 0 } } })
  t.after(() => simulator.close())
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()) } })
  const origin = await server.listening

  const controller = new AbortController()
  const pending = request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF), signal: controller.signal })
  for (let i = 0; i < 200 && simulator.calls.length === 0; i++) await sleep(5)
  controller.abort()
  await assert.rejects(pending)
  process.kill(server.child.pid!, 'SIGTERM')
  await server.exited

  const lines = server.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { severity: string, message: string, httpRequest?: { status: number, latency: string } })
  const access = lines.filter((line) => line.httpRequest !== undefined)
  assert.equal(access.length, 1, 'one access line for the request')
  assert.equal(access[0]!.httpRequest!.status, 499)
  assert.equal(access[0]!.severity, 'INFO')
  assert.match(access[0]!.httpRequest!.latency, /^\d+\.\d{3}s$/)
  assert.deepEqual(lines.filter((line) => line.severity === 'ERROR' || line.severity === 'CRITICAL'), [])
})

test('a catalogued error is one WARNING line with its code, status and details, and no stack', async (t) => {
  const simulator = await startSimulator({ faults: { llm: { status: 500 } } })
  t.after(() => simulator.close())
  const server = startServerProcess(t, { args: PRODUCTION_ARGS, env: { ...liveEnv(simulator.origin), METRICS_PORT: String(await freePort()) } })
  const origin = await server.listening

  const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF) })
  const body = await response.body.json() as { error: { code: string, details?: unknown } }
  assert.ok(response.statusCode >= 500, `an upstream that answers 500 fails the post (got ${response.statusCode})`)
  process.kill(server.child.pid!, 'SIGTERM')
  await server.exited

  const lines = server.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
  const errors = lines.filter((line) => line.code === body.error.code)
  assert.equal(errors.length, 1, `one line for the ${body.error.code} answer`)
  const [line] = errors
  assert.equal(line!.severity, 'WARNING')
  assert.equal(line!.status, response.statusCode)
  assert.deepEqual(line!.details, body.error.details)
  assert.equal(JSON.stringify(line).includes('"stack"'), false, `no stack: ${JSON.stringify(line)}`)
})
