import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import SwaggerParser from '@apidevtools/swagger-parser'
import { buildApp } from '../../src/app.ts'
import { catalogue } from '../../src/errors.ts'
import { simulatorUpstreams } from '../../src/config.ts'
import examples from '../../src/contract/examples.json' with { type: 'json' }
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF, startStack, testConfig } from '../helper.ts'
import { AUDIENCE, googleKeys } from '../security/google-keys.ts'
import { loadContract, parseResponse, rawExchange, type Answer } from './contract.ts'

const contract = loadContract()

test('the served document is the committed openapi.json (npm run openapi rewrites it)', async (t) => {
  const { app } = await startStack(t)
  const served = await app.inject({ url: '/openapi.json' })
  assert.equal(served.statusCode, 200)
  assert.deepEqual(served.json(), contract.document, 'run npm run openapi and commit openapi.json')
  assert.equal((await startStack(t, { env: { DOCS: 'false' } })).app.hasRoute({ method: 'GET', url: '/openapi.json' }), false, 'DOCS=false serves neither')
})

test('the document is valid OpenAPI 3.1 (swagger-parser), and its examples match their schemas', async () => {
  await SwaggerParser.validate(structuredClone(contract.document) as never)
  assert.equal(contract.document.openapi, '3.1.0')
  const documentedCodes = new Set(JSON.stringify(contract.document.components.schemas).match(/"code":\{"type":"string","enum":\[[^\]]*\]/g)?.flatMap((match) => match.match(/"(\w+)"(?=[,\]])/g)!.map((code) => code.slice(1, -1))))
  assert.deepEqual(Object.keys(catalogue).filter((code) => !documentedCodes.has(code)), [], 'every error code is in the document')
  const schemaOf = (name: string) => contract.ajv.compile({ $ref: `openapi.json#/components/schemas/${name}` })
  for (const [name, schema] of [['brief', 'Brief'], ['post', 'Post'], ['invalidRequest', 'Error400'], ['upstreamError', 'Error502'], ['overloaded', 'Error503'], ['timeout', 'Error504']] as const) {
    const validate = schemaOf(schema)
    assert.ok(validate((examples as Record<string, unknown>)[name]), `example ${name}: ${contract.ajv.errorsText(validate.errors)}`)
  }
})

test('the document names every route the app serves, and nothing it does not', async (t) => {
  const { app } = await startStack(t)
  const served = [...app.routeMethods].flatMap(([path, methods]) => [...methods].filter((method) => method !== 'HEAD').map((method) => `${method} ${path}`)).sort()
  const documented = Object.entries(contract.document.paths).flatMap(([path, operations]) => Object.keys(operations as object).map((method) => `${method.toUpperCase()} ${path}`)).sort()
  assert.deepEqual(documented, served)
})

/** Every status of every route, driven for real: the simulator's faults reach the 5xx. */
test('every documented status of every route, driven against the simulator, answers exactly as documented', async (t) => {
  const { app, simulator } = await startStack(t, { env: { UPSTREAM_BACKOFF_BASE_MS: '1' } })
  const apiKey = await startStack(t, { env: { AUTH_MODE: 'api-key', AUTH_API_KEYS: `a:${createHash('sha256').update('key-a').digest('hex')}`, RATE_LIMIT_PER_MINUTE: '1' } })
  const keys = await googleKeys(t)
  const google = await startStack(t, { env: { AUTH_MODE: 'google-id-token', AUTH_AUDIENCE: AUDIENCE, AUTH_ALLOWED_SERVICE_ACCOUNTS: 'someone@else.iam.gserviceaccount.com', AUTH_JWKS_URL: keys.url } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  const inject = async (target: typeof app, method: string, path: string, options: { payload?: string | object, headers?: Record<string, string> } = {}): Promise<Answer> => {
    const response = await target.inject({ method: method as 'GET', url: path, ...options })
    return { method, path, status: response.statusCode, headers: response.headers as Answer['headers'], body: response.body }
  }
  const generate = (headers: Record<string, string> = {}, payload: string | object = GOOD_BRIEF) => inject(app, 'POST', '/generate', { payload, headers })
  const withFault = async (fault: Parameters<typeof simulator.setFault>[1], run: () => Promise<Answer>) => {
    simulator.setFault('llm', fault)
    try { return await run() } finally { simulator.setFault('llm', undefined) }
  }

  const drivers: Record<string, (method: string, path: string) => Promise<Answer>> = {
    'POST /generate 200': () => generate(),
    'POST /generate 401': () => inject(apiKey.app, 'POST', '/generate', { payload: GOOD_BRIEF }),
    'POST /generate 403': async () => inject(google.app, 'POST', '/generate', { payload: GOOD_BRIEF, headers: { authorization: `Bearer ${await keys.sign({})}` } }),
    'POST /generate 413': () => generate({ 'content-type': 'application/json' }, JSON.stringify({ topic: 'x'.repeat(70_000) })),
    'POST /generate 409': async () => {
      simulator.setLatency('llm', { fixedMs: 300, jitterMs: 0 })
      try {
        const first = generate({ 'idempotency-key': 'contract-409' })
        await new Promise((resolve) => setTimeout(resolve, 100))
        const second = await generate({ 'idempotency-key': 'contract-409' })
        await first
        return second
      } finally { simulator.setLatency('llm', undefined) }
    },
    'POST /generate 415': () => generate({ 'content-type': 'text/plain' }, 'a post about pools'),
    'POST /generate 422': async () => {
      assert.equal((await generate({ 'idempotency-key': 'contract-422' })).status, 200)
      return generate({ 'idempotency-key': 'contract-422' }, { ...GOOD_BRIEF, topic: 'another post' })
    },
    'POST /generate 429': async () => {
      const key = { 'x-api-key': 'key-a' }
      assert.equal((await inject(apiKey.app, 'POST', '/generate', { payload: GOOD_BRIEF, headers: key })).status, 200)
      return inject(apiKey.app, 'POST', '/generate', { payload: GOOD_BRIEF, headers: key })
    },
    'POST /generate 500': () => brokenUpstreamAnswer(t),
    'POST /generate 502': () => withFault({ status: 500 }, () => generate()),
    'POST /generate 503': () => withFault({ status: 429, retryAfter: '120' }, () => generate()),
    'POST /generate 504': () => withFault({ hang: true }, () => generate({ 'x-request-timeout-ms': '100' }))
  }
  // Answers every route can give before its handler runs.
  const everywhere: Record<number, (method: string, path: string) => Promise<Answer>> = {
    200: (method, path) => inject(app, method, path),
    301: (method, path) => inject(app, method, path),
    400: async (method, path) => ({ method, path, ...await rawExchange(port, `${method} ${path} HTTP/1.1\r\nhost: test\r\ncontent-length: abc\r\n\r\n`) }),
    431: async (method, path) => ({ method, path, ...await rawExchange(port, `${method} ${path} HTTP/1.1\r\nhost: test\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`) }),
    503: (method, path) => shuttingDownAnswer(t, method, path)
  }

  // The documented statuses, and every status a driver above knows how to cause: one the document
  // lost is still driven, and fails the check.
  const cases = new Map(contract.documented().map((entry) => [`${entry.method} ${entry.path} ${entry.status}`, entry]))
  for (const key of Object.keys(drivers)) {
    const [method = '', path = '', status = ''] = key.split(' ')
    cases.set(key, { method, path, status: Number(status) })
  }
  const problems: string[] = []
  for (const { method, path, status } of cases.values()) {
    const drive = drivers[`${method} ${path} ${status}`] ?? everywhere[status]
    if (drive === undefined) { problems.push(`${method} ${path} ${status}: no driver, so the test cannot show the service gives it`); continue }
    const answer = await drive(method, path)
    if (answer.status !== status) problems.push(`${method} ${path}: driven for ${status}, answered ${answer.status} ${answer.body.slice(0, 200)}`)
    problems.push(...contract.check(answer))
  }
  // And what no operation lists: another method on a known path, and an unknown path.
  for (const [method, path, status] of [['GET', '/generate', 405], ['DELETE', '/healthz', 405], ['GET', '/nope', 404], ['POST', '/v1/generate', 404]] as const) {
    const answer = await inject(app, method, path)
    assert.equal(answer.status, status)
    problems.push(...contract.check(answer))
  }
  // The 400s a body earns before validation: malformed JSON, a prototype key, an empty body.
  for (const payload of ['{"topic":', '{"topic":"pools","__proto__":{"admin":true}}', '']) {
    const answer = await generate({ 'content-type': 'application/json' }, payload)
    assert.equal(answer.status, 400)
    problems.push(...contract.check(answer))
  }
  assert.deepEqual(problems, [])
})

test('a body with a __proto__ key says so, and a GET on POST /generate is 405 with Allow', async (t) => {
  const { app } = await startStack(t)
  const poisoned = await app.inject({ method: 'POST', url: '/generate', headers: { 'content-type': 'application/json' }, payload: '{"topic":"pools","__proto__":{"x":1}}' })
  assert.equal(poisoned.statusCode, 400)
  assert.match(poisoned.json().error.message, /__proto__/)
  const wrongMethod = await app.inject({ method: 'GET', url: '/generate' })
  assert.equal(wrongMethod.statusCode, 405)
  assert.equal(wrongMethod.headers.allow, 'POST')
  assert.equal(wrongMethod.json().error.code, 'method_not_allowed')
})

/** An upstream URL that cannot be parsed throws a TypeError deep in a call: the one honest 500. */
async function brokenUpstreamAnswer (t: TestContext): Promise<Answer> {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const config = testConfig()
  const upstreams = simulatorUpstreams(config, simulator.origin)
  const app = await buildApp({ config, upstreams: { ...upstreams, llm: { ...upstreams.llm, baseUrl: 'http://[not-a-host' } } })
  t.after(() => app.close())
  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })
  return { method: 'POST', path: '/generate', status: response.statusCode, headers: response.headers as Answer['headers'], body: response.body }
}

/**
 * A request read while the instance drains: a proxy pipelines it behind a slow one on the same
 * connection, and the app starts closing in between.
 */
async function shuttingDownAnswer (t: TestContext, method: string, path: string): Promise<Answer> {
  const { app, simulator } = await startStack(t, { simulator: { latency: { llm: { fixedMs: 300, jitterMs: 0 } } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = connect((app.server.address() as { port: number }).port, '127.0.0.1')
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  let raw = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { raw += chunk })
  const body = JSON.stringify(GOOD_BRIEF)
  socket.write(`POST /generate HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  while (simulator.stats().requests.llm === 0) await sleep(5)
  const closed = app.close()
  await sleep(20)
  socket.write(`${method} ${path} HTTP/1.1\r\nhost: test\r\n\r\n`)
  await once(socket, 'close')
  await closed
  const second = raw.split(/(?=HTTP\/1\.1 )/)[1] ?? ''
  return { method, path, ...parseResponse(second) }
}

test('a streamed answer is documented too: its content type, and every event\'s data against the schema x-sse-events names', async (t) => {
  const { app } = await startStack(t)
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  const { request } = await import('undici')
  const { createParser } = await import('eventsource-parser')
  const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify(GOOD_BRIEF) })
  const events: Array<{ event: string, data: string }> = []
  const parser = createParser({ onEvent: (event) => events.push({ event: event.event ?? 'message', data: event.data }) })
  for await (const chunk of response.body) parser.feed(String(chunk))

  const documented = contract.document.paths['/generate'].post.responses['200'].content['text/event-stream']['x-sse-events']
  assert.deepEqual(contract.check({ method: 'POST', path: '/generate', status: response.statusCode, headers: response.headers as Answer['headers'], body: '' }), [])
  assert.ok(events.length > 5)
  for (const { event, data } of events) {
    assert.ok(documented[event] !== undefined, `${event} is documented`)
    const validate = contract.ajv.compile({ $ref: `openapi.json${documented[event].data.$ref}` })
    assert.ok(validate(JSON.parse(data)), `${event}: ${contract.ajv.errorsText(validate.errors)}`)
  }
})
