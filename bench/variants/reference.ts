import { createSecureContext } from 'node:tls'
import Fastify from 'fastify'
import { Agent } from 'undici'
import type { Upstreams } from '../../src/config.ts'
import { fiveCalls, type PostJson } from './five-calls.ts'

/** Bare Fastify and one undici Agent: no validation, telemetry, logging or resilience. */
export function buildReferenceApp (upstreams: Upstreams, connections: number, ca?: string) {
  // One secure context for every connection, as the service's pool makes (a `ca` option would
  // build one per connection, and the reference would pay a cost the service does not).
  const agent = new Agent({ connections, ...(ca === undefined ? {} : { connect: { secureContext: createSecureContext({ ca }) } }) })
  const post: PostJson = async (url, body, headers) => {
    const target = new URL(url)
    const response = await agent.request({
      origin: target.origin, path: target.pathname, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
    })
    return response.body.json()
  }
  const app = Fastify()
  app.post('/generate', async (request) => fiveCalls(post, upstreams, request.body as { topic: string }))
  app.addHook('onClose', async () => agent.close())
  return app
}
