import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { MockAgent } from 'undici'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { liveEnv } from '../spawn.ts'

// The plan's request body, exactly as the pipeline sends it to each provider, held against a
// recorded example of the structured output that provider documents (test/fixtures/structured-output,
// each with its source): the same response_format wrapper, no schema keyword the example does not
// use (or its docs do not list), and each dialect's own rule about closed objects.
interface Recorded { source: string, documentedKeywords: string[], response_format: Record<string, any> }
const recorded = (name: string): Recorded => JSON.parse(readFileSync(new URL(`../fixtures/structured-output/${name}.json`, import.meta.url), 'utf8'))

const VERTEX = 'https://europe-west1-aiplatform.googleapis.com'
const VERTEX_PATH = '/v1/projects/demo/locations/europe-west1/endpoints/openapi'

/** The plan's body sent to OpenAI (the primary, which answers 503) and then to Vertex AI (the fallback). */
async function planBodies (t: import('node:test').TestContext) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  const bodies: Record<string, Record<string, any>> = {}
  agent.get('https://api.openai.com').intercept({ path: '/v1/chat/completions', method: 'POST' }).reply((options) => {
    bodies.openai = JSON.parse(String(options.body))
    return { statusCode: 503, data: { error: { message: 'overloaded' } } }
  })
  // The fallback's answer does not matter here: a 400 ends the request once the body is captured.
  agent.get(VERTEX).intercept({ path: `${VERTEX_PATH}/chat/completions`, method: 'POST' }).reply((options) => {
    bodies.google = JSON.parse(String(options.body))
    return { statusCode: 400, data: { error: { message: 'captured' } } }
  })
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ...liveEnv('https://api.openai.com'),
    LLM_MODEL: 'gpt-4.1-mini',
    LLM_FALLBACK_BASE_URL: `${VERTEX}${VERTEX_PATH}`,
    LLM_FALLBACK_MODEL: 'google/gemini-2.5-flash',
    LLM_FALLBACK_API_KEY: 'ya29.test',
    UPSTREAM_MAX_ATTEMPTS: '1'
  })
  const app = await buildApp({ config, upstreams: config.upstreams!, dispatcher: agent })
  t.after(async () => {
    await app.close()
    await agent.close()
  })
  const response = await app.inject({ method: 'POST', url: '/generate', payload: { topic: 'connection pooling in Node.js', image: false } })
  assert.equal(response.statusCode, 502, 'the fallback\'s 400 is the answer')
  assert.deepEqual(Object.keys(bodies).sort(), ['google', 'openai'], 'the plan went to both providers')
  return bodies
}

/** Every keyword a JSON schema uses: the keys of each schema node, not the names of its properties. */
function keywords (schema: unknown, found = new Set<string>()) {
  if (schema === null || typeof schema !== 'object') return found
  for (const [key, value] of Object.entries(schema)) {
    found.add(key)
    if (key === 'properties') for (const child of Object.values(value as object)) keywords(child, found)
    else if (key === 'items') keywords(value, found)
  }
  return found
}

/** Each object node of a schema, the root included. */
function objects (schema: Record<string, any>): Array<Record<string, any>> {
  const own = schema.type === 'object' ? [schema] : []
  const children = [...Object.values(schema.properties ?? {}), ...(schema.items === undefined ? [] : [schema.items])] as Array<Record<string, any>>
  return [...own, ...children.flatMap(objects)]
}

const shape = (format: Record<string, any>) => ({ type: format.type, json_schema: Object.keys(format.json_schema).sort() })

test('the plan\'s body for OpenAI matches OpenAI\'s documented strict json_schema: its wrapper, its keywords, every object closed and fully required', async (t) => {
  const example = recorded('openai')
  const { openai } = await planBodies(t)
  const format = openai!.response_format
  assert.deepEqual(shape(format), shape(example.response_format))
  assert.equal(format.json_schema.strict, true)
  const allowed = new Set([...keywords(example.response_format.json_schema.schema), ...example.documentedKeywords])
  assert.deepEqual([...keywords(format.json_schema.schema)].filter((keyword) => !allowed.has(keyword)), [], 'keywords OpenAI\'s example does not use')
  for (const node of objects(format.json_schema.schema)) {
    assert.equal(node.additionalProperties, false)
    assert.deepEqual([...node.required].sort(), Object.keys(node.properties).sort(), 'strict mode: every property required')
  }
})

test('the plan\'s body for Vertex AI matches Google\'s schema dialect: the same wrapper, only the keywords Google\'s example uses, no additionalProperties', async (t) => {
  const example = recorded('google')
  const { google, openai } = await planBodies(t)
  assert.equal(google!.model, 'google/gemini-2.5-flash')
  const format = google!.response_format
  assert.deepEqual(shape(format), shape(example.response_format))
  const allowed = new Set([...keywords(example.response_format.json_schema.schema), ...example.documentedKeywords])
  assert.deepEqual([...keywords(format.json_schema.schema)].filter((keyword) => !allowed.has(keyword)), [], 'keywords Google\'s example does not use')
  assert.equal(keywords(format.json_schema.schema).has('additionalProperties'), false)
  // The same fields either way: the dialects differ in keywords, never in what the plan holds.
  const fields = (schema: Record<string, any>) => objects(schema).map((node) => Object.keys(node.properties).join(','))
  assert.deepEqual(fields(format.json_schema.schema), fields(openai!.response_format.json_schema.schema))
})
