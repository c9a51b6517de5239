import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { request } from 'undici'
import { GOOD_BRIEF } from './helper.ts'

const SERVER = new URL('../src/server.ts', import.meta.url).pathname

function startServer (t: TestContext, env: Record<string, string>) {
  const child = spawn(process.execPath, [SERVER], {
    env: { PATH: process.env.PATH, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line in 10 s:\n${stdout}\n${stderr}`)), 10_000)
    child.stdout.on('data', () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
    exited.then(() => { clearTimeout(timer); reject(new Error(`exited before listening:\n${stderr}`)) }, reject)
  })
  return { child, listening, exited, output: () => ({ stdout, stderr }) }
}

test('npm start\'s entry point serves a complete post over real sockets against the embedded simulator, and exits 0 on SIGTERM', async (t) => {
  const server = startServer(t, {})
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
  const server = startServer(t, { UPSTREAM_CONNECTIONS: 'many', PROVIDERS: 'live' })
  server.listening.catch(() => {})

  const [code] = await server.exited

  assert.equal(code, 1)
  const { stderr } = server.output()
  assert.match(stderr, /→ at UPSTREAM_CONNECTIONS/)
  assert.match(stderr, /required when PROVIDERS=live\s+→ at LLM_BASE_URL/)
  assert.doesNotMatch(stderr, /at loadConfig|\.ts:\d+/, 'a message, not a stack trace')
})
