import assert from 'node:assert/strict'
import { test } from 'node:test'
import { analyzeSentiment, extractKeywords, sentimentLabel } from '../../src/providers/language.ts'
import { capture, mockUpstream, UPSTREAM_ORIGIN } from '../helper.ts'

const document = { content: 'Pools are great.', language: 'en' }

test('analyzeSentiment posts a PLAIN_TEXT document with the API key header and labels the score', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, { documentSentiment: { score: 0.8, magnitude: 1.6 }, language: 'en', sentences: [] })
  pool.intercept({ path: '/v1/documents:analyzeSentiment', method: 'POST' }).reply(reply)

  const target = { baseUrl: UPSTREAM_ORIGIN, apiKey: 'goog-key' }
  const sentiment = await analyzeSentiment({ dispatcher: agent, target, maxResponseBytes: 1e6 }, document)

  assert.deepEqual(sentiment, { score: 0.8, magnitude: 1.6, label: 'positive' })
  assert.equal(seen[0]?.headers['x-goog-api-key'], 'goog-key')
  // Only the score and magnitude come back, not the post again sentence by sentence.
  assert.equal(seen[0]?.headers['x-goog-fieldmask'], 'documentSentiment')
  assert.deepEqual(seen[0]?.body, { document: { type: 'PLAIN_TEXT', content: 'Pools are great.', language: 'en' }, encodingType: 'UTF8' })
})

test('no x-goog-api-key header is sent when LANGUAGE_API_KEY is not set', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, { documentSentiment: { score: 0, magnitude: 0 } })
  pool.intercept({ path: '/v1/documents:analyzeSentiment', method: 'POST' }).reply(reply)

  await analyzeSentiment({ dispatcher: agent, target: { baseUrl: UPSTREAM_ORIGIN, apiKey: undefined }, maxResponseBytes: 1e6 }, document)

  assert.equal('x-goog-api-key' in (seen[0]?.headers ?? {}), false)
})

test('sentiment labels follow the ±0.25 thresholds', () => {
  assert.deepEqual([0.25, 0.249, 0, -0.249, -0.25].map(sentimentLabel), ['positive', 'neutral', 'neutral', 'neutral', 'negative'])
})

test('keywords are entities ranked by salience, de-duplicated case-insensitively, cut to the maximum', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, {
    entities: [
      { name: 'pool', salience: 0.1 },
      { name: 'Undici', salience: 0.5 },
      { name: 'undici', salience: 0.2 },
      { name: 'sockets', salience: 0.3 },
      { name: 'memory', salience: 0.05 }
    ]
  })
  pool.intercept({ path: '/v1/documents:analyzeEntities', method: 'POST' }).reply(reply)

  const keywords = await extractKeywords({ dispatcher: agent, target: { baseUrl: UPSTREAM_ORIGIN, apiKey: undefined }, maxResponseBytes: 1e6 }, document, 3)

  assert.deepEqual(keywords, [{ text: 'Undici', salience: 0.5 }, { text: 'sockets', salience: 0.3 }, { text: 'pool', salience: 0.1 }])
  // Names and saliences only: not every mention of every entity.
  assert.equal(seen[0]?.headers['x-goog-fieldmask'], 'entities.name,entities.salience')
})

test('a sentiment score outside [-1, 1] is upstream_bad_response, never passed through', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path: '/v1/documents:analyzeSentiment', method: 'POST' }).reply(200, { documentSentiment: { score: 7, magnitude: 1 } })

  await assert.rejects(
    analyzeSentiment({ dispatcher: agent, target: { baseUrl: UPSTREAM_ORIGIN, apiKey: undefined }, maxResponseBytes: 1e6 }, document),
    { code: 'upstream_bad_response' }
  )
})
