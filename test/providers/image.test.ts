import assert from 'node:assert/strict'
import { test } from 'node:test'
import { dataUrl, generateImage } from '../../src/providers/image.ts'
import { pngImage } from '../../src/simulator/images.ts'
import { capture, mockUpstream, UPSTREAM_ORIGIN } from '../helper.ts'

const target = { baseUrl: `${UPSTREAM_ORIGIN}/v1`, apiKey: 'sk-img', model: 'gpt-image-test', size: '1024x1024', maxBytes: 10_000, urlOrigins: [] }
const path = '/v1/images/generations'

test('generateImage posts {model, prompt, n: 1, size} and returns data[0].url', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const { seen, reply } = capture(200, { created: 1, data: [{ url: 'https://images.test/a.png' }] })
  pool.intercept({ path, method: 'POST' }).reply(reply)

  const image = await generateImage({ dispatcher: agent, target }, 'a lighthouse')

  assert.deepEqual(image, { url: 'https://images.test/a.png' })
  assert.equal(seen[0]?.headers.authorization, 'Bearer sk-img')
  assert.deepEqual(seen[0]?.body, { model: 'gpt-image-test', prompt: 'a lighthouse', n: 1, size: '1024x1024' })
})

test('b64_json comes back as bytes with the media type sniffed from them, ready for a data URL', async (t) => {
  const { agent, pool } = mockUpstream(t)
  const png = pngImage('0123456789abcdef0123456789abcdef')
  pool.intercept({ path, method: 'POST' }).reply(200, { data: [{ b64_json: png.toString('base64') }] })

  const image = await generateImage({ dispatcher: agent, target }, 'a lighthouse')

  assert.deepEqual(image, { bytes: png, contentType: 'image/png' })
  assert.equal(dataUrl(image as { bytes: Buffer, contentType: string }), `data:image/png;base64,${png.toString('base64')}`)
})

test('an image above IMAGE_MAX_BYTES is refused as upstream_response_too_large', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path, method: 'POST' }).reply(200, { data: [{ b64_json: Buffer.alloc(target.maxBytes + 1, 1).toString('base64') }] })

  await assert.rejects(generateImage({ dispatcher: agent, target }, 'p'), (error: { code: string, details: unknown }) => {
    assert.equal(error.code, 'upstream_response_too_large')
    assert.deepEqual(error.details, { upstream: 'image', bytes: target.maxBytes + 1, limit: target.maxBytes })
    return true
  })
})

test('an answer with neither url nor b64_json, or with an error status, maps into the catalogue', async (t) => {
  const { agent, pool } = mockUpstream(t)
  pool.intercept({ path, method: 'POST' }).reply(200, { data: [{ revised_prompt: 'x' }] })
  pool.intercept({ path, method: 'POST' }).reply(200, { data: [{ url: 'javascript:alert(1)' }] })
  pool.intercept({ path, method: 'POST' }).reply(400, { error: { message: 'content policy' } })

  await assert.rejects(generateImage({ dispatcher: agent, target }, 'p'), { code: 'upstream_bad_response' })
  await assert.rejects(generateImage({ dispatcher: agent, target }, 'p'), { code: 'upstream_bad_response' })
  await assert.rejects(generateImage({ dispatcher: agent, target }, 'p'), { code: 'upstream_error' })
})
