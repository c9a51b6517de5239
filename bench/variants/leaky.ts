import Fastify from 'fastify'
import { Client } from 'undici'
import type { Upstreams } from '../../src/config.ts'
import { fiveCalls, type PostJson } from './five-calls.ts'

/**
 * The incident's pattern, kept only under bench/ as a negative control: a new client for every
 * outbound call, never closed. Each call leaves a socket and its buffers behind.
 */
export function buildLeakyApp (upstreams: Upstreams) {
  const post: PostJson = async (url, body, headers) => {
    const target = new URL(url)
    const client = new Client(target.origin)
    const response = await client.request({
      path: target.pathname, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body)
    })
    return response.body.json()
  }
  const app = Fastify()
  app.post('/generate', async (request) => fiveCalls(post, upstreams, request.body as { topic: string }))
  return app
}
