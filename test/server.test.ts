import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { request } from 'undici'
import { GOOD_BRIEF } from './helper.ts'
import { freePort, startServerProcess } from './spawn.ts'

test('npm start\'s command serves a complete post over real sockets against the embedded simulator, and exits 0 on SIGTERM', async (t) => {
  const start = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start as string
  assert.equal(start, 'node --env-file-if-exists=.env --import ./src/telemetry.ts src/server.ts')
  const server = startServerProcess(t, { args: start.split(' ').slice(1), env: { METRICS_PORT: String(await freePort()) } })
  const origin = await server.listening

  const health = await request(`${origin}/healthz`)
  assert.equal(health.statusCode, 200)
  await health.body.dump()
  const response = await request(`${origin}/generate`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF)
  })
  const post = await response.body.json() as { title: string, image: { url: string }, warnings: unknown[] }
  assert.equal(response.statusCode, 200)
  assert.match(post.title, /connection pooling/i)
  assert.deepEqual(post.warnings, [])

  const image = await request(post.image.url)
  assert.equal(image.headers['content-type'], 'image/svg+xml')
  assert.match(await image.body.text(), /^<svg /)

  assert.match(server.output().stdout, /PROVIDERS=simulator: using the bundled upstream simulator at http:\/\/127\.0\.0\.1:\d+\. Set PROVIDERS=live/)
  process.kill(server.child.pid!, 'SIGTERM')
  const [code] = await server.exited
  assert.equal(code, 0)
})

test('an invalid environment stops start-up with exit code 1 and a message naming the variable', async (t) => {
  const server = startServerProcess(t, { env: { UPSTREAM_CONNECTIONS: 'many', PROVIDERS: 'live' } })

  const [code] = await server.exited

  assert.equal(code, 1)
  const { stderr } = server.output()
  assert.match(stderr, /→ at UPSTREAM_CONNECTIONS/)
  assert.match(stderr, /required when PROVIDERS=live\s+→ at LLM_BASE_URL/)
  assert.doesNotMatch(stderr, /at loadConfig|\.ts:\d+/, 'a message, not a stack trace')
})

test('a metrics port already in use stops start-up with exit code 1 and a message naming METRICS_PORT', async (t) => {
  const taken = createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.after(() => taken.close())
  const port = (taken.address() as { port: number }).port
  const server = startServerProcess(t, { args: ['--import', './src/telemetry.ts', 'src/server.ts'], env: { METRICS_PORT: String(port) } })

  const timeout = new Promise<'running'>((resolve) => setTimeout(resolve, 10_000, 'running').unref())
  const code = await Promise.race([server.exited.then(([exitCode]) => exitCode), timeout])

  assert.equal(code, 1, 'the service ran on without its metrics')
  assert.match(server.output().stderr, new RegExp(`METRICS_PORT: cannot serve /metrics on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`))
})
