import assert from 'node:assert/strict'
import { test } from 'node:test'
import { request } from 'undici'
import { FaultSpecError, parseEndpointFault, parseFault } from '../../src/simulator/faults.ts'
import { startSimulator } from '../../src/simulator/server.ts'

test('fault specs parse from the flag and header grammar, and bad ones are refused', () => {
  assert.deepEqual(parseFault('status=429,retry-after=1'), { status: 429, retryAfter: '1' })
  assert.deepEqual(parseFault('reset=body'), { reset: 'body' })
  assert.deepEqual(parseFault('wrong-shape,kind=plan'), { wrongShape: true, kind: 'plan' })
  assert.deepEqual(parseFault('stall,kind=section'), { stall: true, kind: 'section' })
  assert.deepEqual(parseFault('cut'), { cut: true })
  assert.deepEqual(parseFault('stream-error'), { streamError: true })
  assert.deepEqual(parseFault('no-done'), { noDone: true })
  assert.deepEqual(parseFault('finish-length'), { finishLength: true })
  assert.deepEqual(parseEndpointFault('image:hang'), ['image', { hang: true }])
  assert.throws(() => parseFault('status=abc'), FaultSpecError)
  assert.throws(() => parseFault('explode'), FaultSpecError)
  assert.throws(() => parseEndpointFault('video:hang'), FaultSpecError)
})

async function call (origin: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await request(`${origin}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
  })
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() }
}

test('the simulator speaks each wire format, checks bearer tokens, and honours x-sim-fault per request', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const chat = { model: 'm', messages: [{ role: 'user', content: '<brief>{"topic":"kites"}</brief>' }] }

  const unauthorised = await call(simulator.origin, '/v1/chat/completions', chat)
  const ok = await call(simulator.origin, '/v1/chat/completions', chat, { authorization: 'Bearer k' })
  const limited = await call(simulator.origin, '/v1/chat/completions', chat, { authorization: 'Bearer k', 'x-sim-fault': 'status=429,retry-after=2' })
  const entities = await call(simulator.origin, '/v1/documents:analyzeEntities', { document: { type: 'PLAIN_TEXT', content: 'Kite flying is fun. Kite flying needs wind.' } })
  const badDocument = await call(simulator.origin, '/v1/documents:analyzeSentiment', { document: { type: 'HTML' } })

  assert.equal(unauthorised.status, 401)
  assert.equal(ok.status, 200)
  assert.match(JSON.parse(ok.body).choices[0].message.content, /kites/i)
  assert.equal(limited.status, 429)
  assert.equal(limited.headers['retry-after'], '2')
  assert.match(JSON.parse(entities.body).entities[0].name, /^kite flying/i)
  assert.equal(badDocument.status, 400)
  assert.equal(JSON.parse(badDocument.body).error.status, 'INVALID_ARGUMENT')
})

test('Natural Language answers keep only the fields an X-Goog-FieldMask names, and a mask naming a field they lack is a 400', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const document = { document: { type: 'PLAIN_TEXT', content: 'Kite flying is fun. Kite flying needs wind. Wind is great.' } }

  const whole = JSON.parse((await call(simulator.origin, '/v1/documents:analyzeSentiment', document)).body)
  const sentiment = JSON.parse((await call(simulator.origin, '/v1/documents:analyzeSentiment', document, { 'x-goog-fieldmask': 'documentSentiment' })).body)
  const wholeEntities = JSON.parse((await call(simulator.origin, '/v1/documents:analyzeEntities', document)).body)
  const entities = JSON.parse((await call(simulator.origin, '/v1/documents:analyzeEntities', document, { 'x-goog-fieldmask': 'entities.name,entities.salience' })).body)
  const unknown = await call(simulator.origin, '/v1/documents:analyzeEntities', document, { 'x-goog-fieldmask': 'entities.name,entities.score' })

  assert.equal(whole.sentences.length, 3)
  assert.deepEqual(sentiment, { documentSentiment: whole.documentSentiment })
  assert.ok(wholeEntities.entities.length > 1)
  assert.ok(wholeEntities.entities.every((entity: { mentions: unknown[] }) => entity.mentions.length > 0))
  assert.deepEqual(entities, { entities: wholeEntities.entities.map(({ name, salience }: { name: string, salience: number }) => ({ name, salience })) })
  assert.equal(unknown.status, 400)
  assert.equal(JSON.parse(unknown.body).error.status, 'INVALID_ARGUMENT')
  assert.match(JSON.parse(unknown.body).error.message, /entities\.score/)
})

test('stats count accepted and open provider connections, and ignore the stats request itself', async (t) => {
  const simulator = await startSimulator()
  t.after(() => simulator.close())
  await call(simulator.origin, '/v1/documents:analyzeSentiment', { document: { type: 'PLAIN_TEXT', content: 'Fine.' } })

  const response = await request(`${simulator.origin}/__sim/stats`, { reset: true } as never)
  const stats = await response.body.json() as { connections: { open: number, peak: number }, requests: { sentiment: number } }

  assert.equal(stats.requests.sentiment, 1)
  assert.equal(stats.connections.open, 1)
  assert.equal(stats.connections.peak, 1)
})

test('latency is applied per endpoint', async (t) => {
  const simulator = await startSimulator({ latency: { sentiment: { fixedMs: 120, jitterMs: 0 } } })
  t.after(() => simulator.close())
  const start = performance.now()
  await call(simulator.origin, '/v1/documents:analyzeSentiment', { document: { type: 'PLAIN_TEXT', content: 'Fine.' } })
  assert.ok(performance.now() - start >= 115)
})

test('base64 image mode answers with a real PNG', async (t) => {
  const simulator = await startSimulator({ imageFormat: 'b64' })
  t.after(() => simulator.close())
  const answer = await call(simulator.origin, '/v1/images/generations', { model: 'm', prompt: 'a kite', n: 1, size: '64x64' }, { authorization: 'Bearer k' })
  const bytes = Buffer.from(JSON.parse(answer.body).data[0].b64_json, 'base64')
  assert.deepEqual([...bytes.subarray(1, 4)], [...Buffer.from('PNG')])
})
