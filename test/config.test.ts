import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ConfigError, loadConfig, simulatorUpstreams } from '../src/config.ts'
import { aspectRatio } from '../src/upstreams.ts'

const LIVE = {
  PROVIDERS: 'live',
  AUTH_MODE: 'none',
  LLM_BASE_URL: 'https://api.openai.com/v1',
  LLM_API_KEY: 'sk-1',
  LLM_MODEL: 'gpt-4o-mini',
  IMAGE_BASE_URL: 'https://api.openai.com/v1',
  IMAGE_API_KEY: 'sk-2',
  IMAGE_MODEL: 'gpt-image-1',
  LANGUAGE_API_KEY: 'goog-1'
}

test('an empty environment gives the documented defaults, frozen, in simulator mode', () => {
  const config = loadConfig({})
  assert.equal(config.port, 8080)
  assert.equal(config.providers, 'simulator')
  assert.equal(config.pool.connections, 64)
  assert.equal(config.keywordsMax, 8)
  assert.equal(config.bodyLimitBytes, 65_536)
  assert.equal(config.upstreams, undefined)
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.pool))
})

test('numbers are coerced from strings and empty strings count as unset', () => {
  const config = loadConfig({ PORT: '9000', UPSTREAM_CONNECTIONS: '12', KEYWORDS_MAX: '' })
  assert.equal(config.port, 9000)
  assert.equal(config.pool.connections, 12)
  assert.equal(config.keywordsMax, 8)
})

for (const [name, value] of [['PORT', 'eighty'], ['UPSTREAM_CONNECTIONS', '0'], ['LOG_LEVEL', 'loud'], ['PROVIDERS', 'openai'], ['IMAGE_SIZE', 'big'], ['UPSTREAM_HEADERS_TIMEOUT_MS', '-5']] as const) {
  test(`an invalid ${name} stops start-up with a message that names it`, () => {
    assert.throws(() => loadConfig({ [name]: value }), (error: Error) => {
      assert.ok(error instanceof ConfigError)
      assert.match(error.message, new RegExp(name))
      return true
    })
  })
}

test('PROVIDERS=live requires every provider variable and names each missing one', () => {
  assert.throws(() => loadConfig({ PROVIDERS: 'live', LLM_BASE_URL: 'https://api.openai.com/v1' }), (error: Error) => {
    for (const name of ['LLM_API_KEY', 'LLM_MODEL', 'IMAGE_BASE_URL', 'IMAGE_API_KEY', 'IMAGE_MODEL', 'LANGUAGE_API_KEY']) {
      assert.match(error.message, new RegExp(`required when PROVIDERS=live\\s+→ at ${name}\\b`))
    }
    assert.doesNotMatch(error.message, /LLM_BASE_URL/)
    return true
  })
})

test('live mode uses the configured providers and never the simulator', () => {
  const config = loadConfig(LIVE)
  assert.deepEqual(config.upstreams?.llm, { baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-1', model: 'gpt-4o-mini', maxCompletionTokens: 4096, provider: 'openai' })
  assert.equal(config.upstreams?.llmFallback, undefined)
  assert.equal(config.upstreams?.language.baseUrl, 'https://language.googleapis.com')
})

test('a provider base URL in simulator mode is refused instead of silently ignored', () => {
  assert.throws(() => loadConfig({ LLM_BASE_URL: 'http://localhost:11434/v1' }), /set PROVIDERS=live or unset it\s+→ at LLM_BASE_URL/)
})

test('a CA file that cannot be read, or holds no certificate, is a configuration error naming its variable', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ca-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const notPem = join(dir, 'ca.txt')
  writeFileSync(notPem, 'not a certificate')
  assert.throws(() => loadConfig({ UPSTREAM_TLS_CA_FILE: join(dir, 'missing.pem') }), /cannot read .*missing\.pem: ENOENT\s+→ at UPSTREAM_TLS_CA_FILE/)
  assert.throws(() => loadConfig({ UPSTREAM_TLS_CA_FILE: notPem }), /holds no PEM certificate\s+→ at UPSTREAM_TLS_CA_FILE/)
  assert.throws(() => loadConfig({ REDIS_URL: 'rediss://127.0.0.1:6380', REDIS_TLS_CA_FILE: notPem }), /holds no PEM certificate\s+→ at REDIS_TLS_CA_FILE/)
})

test('a base URL must be http or https', () => {
  assert.throws(() => loadConfig({ ...LIVE, LLM_BASE_URL: 'file:///etc/passwd' }), /LLM_BASE_URL/)
})

test('simulatorUpstreams points every provider at the one simulator origin', () => {
  const upstreams = simulatorUpstreams(loadConfig({}), 'http://127.0.0.1:4010')
  assert.equal(upstreams.llm.baseUrl, 'http://127.0.0.1:4010/v1')
  assert.equal(upstreams.image.baseUrl, 'http://127.0.0.1:4010/v1')
  assert.equal(upstreams.language.baseUrl, 'http://127.0.0.1:4010')
})

test('on Cloud Run, Natural Language and Vertex AI need no key: the service account token stands in', () => {
  const { LANGUAGE_API_KEY, LLM_API_KEY, ...rest } = LIVE
  assert.throws(() => loadConfig(rest), /required when PROVIDERS=live\s+→ at LANGUAGE_API_KEY/)
  const onCloudRun = loadConfig({ ...rest, LLM_API_KEY, K_SERVICE: 'content-engine' })
  assert.equal(onCloudRun.upstreams?.language.apiKey, undefined)
  assert.equal(onCloudRun.upstreams?.metadataHost, 'metadata.google.internal')
  const vertex = 'https://europe-west1-aiplatform.googleapis.com/v1/projects/p/locations/europe-west1/endpoints/openapi'
  assert.equal(loadConfig({ ...rest, K_SERVICE: 'content-engine', LLM_BASE_URL: vertex }).upstreams?.llm.apiKey, undefined)
  assert.throws(() => loadConfig({ ...rest, K_SERVICE: 'content-engine' }), /→ at LLM_API_KEY/, 'a non-Vertex LLM still needs its key')
})

test('IMAGE_BUCKET needs Google credentials, and the metadata host can be pointed elsewhere as Google libraries allow', () => {
  assert.throws(() => loadConfig({ ...LIVE, IMAGE_BUCKET: 'posts' }), /needs Google credentials[\s\S]*→ at IMAGE_BUCKET/)
  const config = loadConfig({ ...LIVE, IMAGE_BUCKET: 'posts', GCE_METADATA_HOST: '127.0.0.1:8999' })
  assert.deepEqual(config.upstreams?.storage, { baseUrl: 'https://storage.googleapis.com', bucket: 'posts' })
  assert.equal(config.upstreams?.metadataHost, '127.0.0.1:8999')
})

test('an image fallback (Imagen): its URL needs a model and a key (not for Vertex AI on Google Cloud), and IMAGE_SIZE becomes the nearest ratio Imagen takes', () => {
  const VERTEX = 'https://europe-west1-aiplatform.googleapis.com/v1/projects/demo/locations/europe-west1'
  assert.throws(() => loadConfig({ ...LIVE, IMAGE_FALLBACK_BASE_URL: VERTEX }), (error: Error) => /IMAGE_FALLBACK_MODEL/.test(error.message) && /IMAGE_FALLBACK_API_KEY/.test(error.message))
  assert.throws(() => loadConfig({ ...LIVE, IMAGE_FALLBACK_MODEL: 'imagen-4.0-generate-001' }), /only used with IMAGE_FALLBACK_BASE_URL[^\n]*\s+→ at IMAGE_FALLBACK_MODEL/)
  assert.throws(() => loadConfig({ IMAGE_FALLBACK_BASE_URL: VERTEX }), /IMAGE_FALLBACK_BASE_URL/, 'live only, like every base URL')
  const onCloudRun = loadConfig({ ...LIVE, K_SERVICE: 'content-engine', IMAGE_FALLBACK_BASE_URL: VERTEX, IMAGE_FALLBACK_MODEL: 'imagen-4.0-generate-001', IMAGE_SIZE: '1792x1024' })
  assert.deepEqual(onCloudRun.upstreams?.imageFallback, { baseUrl: VERTEX, apiKey: undefined, model: 'imagen-4.0-generate-001', provider: 'gcp.vertex_ai', aspectRatio: '16:9', maxBytes: 4 * 1024 * 1024 })
  for (const [size, ratio] of [['1024x1024', '1:1'], ['1024x1536', '3:4'], ['1536x1024', '4:3'], ['1024x1792', '9:16'], ['3000x1000', '16:9']]) {
    assert.equal(aspectRatio(size!), ratio, size)
  }
})

test('a fallback LLM: its URL needs a model and a key (not for Vertex AI on Google Cloud), and neither is accepted without the URL', () => {
  const VERTEX = 'https://europe-west1-aiplatform.googleapis.com/v1/projects/demo/locations/europe-west1/endpoints/openapi'
  assert.throws(() => loadConfig({ ...LIVE, LLM_FALLBACK_BASE_URL: VERTEX }), (error: Error) => /LLM_FALLBACK_MODEL/.test(error.message) && /LLM_FALLBACK_API_KEY/.test(error.message))
  assert.throws(() => loadConfig({ ...LIVE, LLM_FALLBACK_MODEL: 'google/gemini-2.5-flash' }), /only used with LLM_FALLBACK_BASE_URL[^\n]*\s+→ at LLM_FALLBACK_MODEL/)
  const onCloudRun = loadConfig({ ...LIVE, K_SERVICE: 'content-engine', LLM_FALLBACK_BASE_URL: VERTEX, LLM_FALLBACK_MODEL: 'google/gemini-2.5-flash' })
  assert.deepEqual(onCloudRun.upstreams?.llmFallback, { baseUrl: VERTEX, apiKey: undefined, model: 'google/gemini-2.5-flash', maxCompletionTokens: 4096, provider: 'gcp.vertex_ai' })
  // Two endpoints on one host still get two names, so their labels and warnings tell them apart.
  const sameHost = loadConfig({ ...LIVE, LLM_FALLBACK_BASE_URL: 'https://api.openai.com/v1', LLM_FALLBACK_MODEL: 'gpt-4.1-mini', LLM_FALLBACK_API_KEY: 'sk-2' })
  assert.equal(sameHost.upstreams?.llmFallback?.provider, 'openai (fallback)')
})
