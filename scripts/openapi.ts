// npm run openapi: takes the examples from real answers of the service against the bundled
// simulator, then writes the OpenAPI document the service serves to openapi.json, so that a
// pull request shows every change to the contract. test/contract/ fails when the two differ.
import { writeFileSync } from 'node:fs'
import { buildApp } from '../src/app.ts'
import { loadConfig, simulatorUpstreams } from '../src/config.ts'
import { buildOpenApi } from '../src/contract/openapi.ts'
import { startSimulator } from '../src/simulator/server.ts'

const root = new URL('../', import.meta.url)
const simulator = await startSimulator()
const config = loadConfig({ LOG_LEVEL: 'silent', UPSTREAM_BACKOFF_BASE_MS: '1' })
const app = await buildApp({ config, upstreams: simulatorUpstreams(config, simulator.origin) })
await app.ready()

const brief = { topic: 'keeping sourdough starter alive', audience: 'home bakers', tone: 'casual', length: 'short' }
const post = async (payload: unknown, headers: Record<string, string> = {}) =>
  (await app.inject({ method: 'POST', url: '/generate', payload: payload as object, headers })).json()

try {
  const examples: Record<string, unknown> = { brief, post: await post(brief) }
  examples.invalidRequest = await post({ topic: 'hi', tone: 'angry', extra: 1 })
  simulator.setFault('llm', { status: 500 })
  examples.upstreamError = await post(brief)
  simulator.setFault('llm', { status: 429, retryAfter: '120' })
  examples.overloaded = await post(brief)
  simulator.setFault('llm', { hang: true })
  examples.timeout = await post(brief, { 'x-request-timeout-ms': '200' })
  simulator.setFault('llm', undefined)

  writeFileSync(new URL('src/contract/examples.json', root), JSON.stringify(examples, null, 2) + '\n')
  writeFileSync(new URL('openapi.json', root), JSON.stringify(buildOpenApi(examples), null, 2) + '\n')
  console.log('wrote src/contract/examples.json and openapi.json')
} finally {
  await app.close()
  await simulator.close()
}
