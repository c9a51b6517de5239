import type { TestContext } from 'node:test'
import { MockAgent } from 'undici'
import { buildApp } from '../src/app.ts'
import { loadConfig, simulatorUpstreams } from '../src/config.ts'
import { startSimulator, type SimulatorOptions } from '../src/simulator/server.ts'

export function testConfig (env: Record<string, string> = {}) {
  return loadConfig({ LOG_LEVEL: 'silent', ...env })
}

/** The real app against a real simulator over loopback; both are closed when the test ends. */
export async function startStack (t: TestContext, options: { env?: Record<string, string>, simulator?: SimulatorOptions } = {}) {
  const simulator = await startSimulator(options.simulator)
  t.after(() => simulator.close())
  const config = testConfig(options.env)
  const app = await buildApp({ config, upstreams: simulatorUpstreams(config, simulator.origin) })
  t.after(() => app.close())
  await app.ready()
  return { app, simulator, config }
}

export const UPSTREAM_ORIGIN = 'https://upstream.test'

/** A MockAgent that refuses real connections and fails the test if an interceptor went unused. */
export function mockUpstream (t: TestContext) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  t.after(async () => {
    agent.assertNoPendingInterceptors()
    await agent.close()
  })
  return { agent, pool: agent.get(UPSTREAM_ORIGIN) }
}

export interface Captured {
  path: string
  method: string
  headers: Record<string, string>
  body: Record<string, unknown>
}

/** A reply callback that records what was sent, so a test can assert on the exact request. */
export function capture (statusCode: number, data: unknown) {
  const seen: Captured[] = []
  const reply = (options: { path: string, method: string, headers?: unknown, body?: unknown }) => {
    seen.push({
      path: options.path,
      method: options.method,
      headers: Object.fromEntries(Object.entries(options.headers as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v])),
      body: JSON.parse(String(options.body))
    })
    return { statusCode, data: typeof data === 'string' ? data : JSON.stringify(data), responseOptions: { headers: { 'content-type': 'application/json' } } }
  }
  return { seen, reply }
}

export const GOOD_BRIEF = { topic: 'connection pooling in Node.js', audience: 'backend engineers', keywords: ['undici'] }
