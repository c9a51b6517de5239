import assert from 'node:assert/strict'
import { test } from 'node:test'
import { request } from 'undici'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { liveEnv } from '../spawn.ts'

test('on Google Cloud: Natural Language gets the metadata token, base64 images go to the bucket, one token fetch serves many calls', async (t) => {
  const simulator = await startSimulator({ imageFormat: 'b64' })
  t.after(() => simulator.close())
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    ...liveEnv(simulator.origin),
    LANGUAGE_API_KEY: '',
    GCE_METADATA_HOST: new URL(simulator.origin).host,
    IMAGE_BUCKET: 'posts-images',
    STORAGE_BASE_URL: simulator.origin
  })
  const app = await buildApp({ config, upstreams: config.upstreams! })
  t.after(() => app.close())

  const posts = await Promise.all([1, 2, 3].map(async (n) => {
    const response = await app.inject({ method: 'POST', url: '/generate', payload: { ...GOOD_BRIEF, topic: `${GOOD_BRIEF.topic} ${n}` } })
    assert.equal(response.statusCode, 200)
    return response.json()
  }))

  for (const post of posts) {
    assert.deepEqual(post.warnings, [])
    assert.match(post.image.url, new RegExp(`^${simulator.origin}/posts-images/images/[0-9a-f]{32}\\.png$`))
  }
  const image = await request(posts[0].image.url)
  assert.equal(image.headers['content-type'], 'image/png')
  assert.deepEqual([...(await image.body.bytes()).subarray(1, 4)], [...Buffer.from('PNG')])

  const stats = simulator.stats()
  assert.equal(stats.requests.metadata, 1, 'one token fetch for six language calls and three uploads')
  assert.equal(stats.requests.storage, 3)
  const language = simulator.calls.filter((call) => call.endpoint === 'sentiment' || call.endpoint === 'entities')
  assert.equal(language.length, 6)
  for (const call of language) {
    assert.equal(call.headers.authorization, 'Bearer sim-token-1')
    assert.equal(call.headers['x-goog-api-key'], undefined)
  }
})
