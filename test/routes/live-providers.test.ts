import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { pngImage } from '../../src/simulator/images.ts'

// An independent server, written here from the public wire formats and nothing in src/simulator
// but a PNG: if the service only worked against its own simulator, this test would show it.
async function startIndependentProviders () {
  const seen: Array<{ path: string, headers: IncomingMessage['headers'], body: Record<string, unknown> }> = []
  const server = createServer(async (req, res) => {
    let text = ''
    for await (const chunk of req) text += chunk
    const body = JSON.parse(text)
    seen.push({ path: req.url!, headers: req.headers, body })
    const answer = (value: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value))
    const usage = { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 }
    switch (req.url) {
      case '/openai/v1/chat/completions': {
        // OpenAI's streaming format: chat.completion.chunk events, a usage chunk, then [DONE].
        const properties = body.response_format?.json_schema?.schema?.properties
        const content = properties === undefined
          ? 'Tide pools are wonderful places to learn.'
          : JSON.stringify({ title: 'Tide pools, explained', metaDescription: 'A short guide.', imageAlt: 'A rocky shore', sections: [{ heading: 'What lives there', points: ['anemones'] }, { heading: 'How to visit', points: ['low tide'] }] })
        const chunk = (delta: object, finish: string | null) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(chunk({ role: 'assistant', content: content.slice(0, 10) }, null))
        res.write(chunk({ content: content.slice(10) }, null))
        res.write(chunk({}, 'stop'))
        if (body.stream_options?.include_usage === true) res.write(`data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [], usage })}\n\n`)
        return res.end('data: [DONE]\n\n')
      }
      case '/openai/v1/images/generations':
        return answer({ created: 1, data: [{ b64_json: pngImage('00ff00ff00ff00ff').toString('base64') }] })
      case '/nl/v1/documents:analyzeSentiment':
        return answer({ documentSentiment: { magnitude: 0.9, score: 0.9 }, language: 'en', sentences: [] })
      case '/nl/v1/documents:analyzeEntities':
        return answer({ entities: [{ name: 'tide pools', type: 'LOCATION', metadata: {}, salience: 0.9, mentions: [] }], language: 'en' })
      default:
        res.writeHead(404).end()
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { origin, seen, close: () => { server.closeAllConnections(); server.close() } }
}

test('pointed at an independent server that speaks the public wire formats, PROVIDERS=live works unchanged', async (t) => {
  const providers = await startIndependentProviders()
  t.after(providers.close)
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    PROVIDERS: 'live',
    AUTH_MODE: 'none',
    LLM_BASE_URL: `${providers.origin}/openai/v1`,
    LLM_API_KEY: 'sk-live',
    LLM_MODEL: 'gpt-4o-mini',
    IMAGE_BASE_URL: `${providers.origin}/openai/v1/`,
    IMAGE_API_KEY: 'sk-image',
    IMAGE_MODEL: 'gpt-image-1',
    LANGUAGE_BASE_URL: `${providers.origin}/nl`,
    LANGUAGE_API_KEY: 'goog-live'
  })
  const app = await buildApp({ config, upstreams: config.upstreams! })
  t.after(() => app.close())

  const response = await app.inject({ method: 'POST', url: '/generate', payload: { topic: 'tide pools' } })

  assert.equal(response.statusCode, 200)
  const post = response.json()
  assert.equal(post.title, 'Tide pools, explained')
  assert.equal(post.slug, 'tide-pools-explained')
  assert.match(post.image.url, /^data:image\/png;base64,/)
  assert.deepEqual(post.sentiment, { score: 0.9, magnitude: 0.9, label: 'positive' })
  assert.deepEqual(post.keywords, [{ text: 'tide pools', salience: 0.9 }])
  assert.match(post.body, /^## What lives there\n\nTide pools are wonderful places to learn\.\n\n## How to visit\n\nTide pools/)
  const totals = { promptTokens: 30, completionTokens: 60, totalTokens: 90 }
  assert.deepEqual(post.usage, { ...totals, byProvider: { [new URL(providers.origin).host]: totals } }, 'the plan and two sections, from their usage chunks')
  assert.deepEqual(post.warnings, [])

  const byPath = (path: string) => providers.seen.filter((call) => call.path === path)
  assert.equal(byPath('/openai/v1/chat/completions').length, 3)
  assert.ok(byPath('/openai/v1/chat/completions').every((call) => call.headers.authorization === 'Bearer sk-live' && call.body.model === 'gpt-4o-mini' && call.body.stream === true))
  assert.equal(byPath('/openai/v1/images/generations')[0]?.headers.authorization, 'Bearer sk-image')
  assert.equal(byPath('/nl/v1/documents:analyzeSentiment')[0]?.headers['x-goog-api-key'], 'goog-live')
  assert.equal(byPath('/nl/v1/documents:analyzeEntities')[0]?.headers['x-goog-api-key'], 'goog-live')
})
