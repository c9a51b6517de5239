import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { request } from 'undici'
import { startSimulator } from '../../src/simulator/server.ts'
import { GOOD_BRIEF } from '../helper.ts'
import { freePort, liveEnv, startServerProcess } from '../spawn.ts'

const ROOT = new URL('../../', import.meta.url).pathname

// No Docker engine runs here, so the runtime stage is rebuilt by hand: the same dist/, production
// dependencies only (from npm's cache, offline), and the Dockerfile's own CMD and ENV. A runtime
// dependency left in devDependencies makes this fail the way the image would.
test('the runtime stage, built from dist/ with npm ci --omit=dev, starts with the container\'s command line and serves a post', async (t) => {
  assert.ok(existsSync(join(ROOT, 'dist/server.js')), 'dist/ is built (npm test runs npm run build first)')
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[]
  const env = Object.fromEntries([...dockerfile.matchAll(/^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$/gm)].map((m) => [m[1]!, m[2]!]))

  const app = mkdtempSync(join(tmpdir(), 'content-engine-runtime-'))
  t.after(() => rmSync(app, { recursive: true, force: true }))
  for (const path of ['package.json', 'package-lock.json', 'dist']) cpSync(join(ROOT, path), join(app, path), { recursive: true })
  execFileSync('npm', ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: 'pipe' })
  assert.equal(existsSync(join(app, 'node_modules/typescript')), false, 'no dev dependencies in the runtime')
  assert.equal(existsSync(join(app, 'node_modules/node')), false, 'the image brings its own Node 24')

  const simulator = await startSimulator()
  t.after(() => simulator.close())
  const server = startServerProcess(t, {
    cwd: app,
    args: cmd,
    // The container's ENV; only the ports are moved off 8080/9464 so tests can run side by side.
    env: { ...env, HOST: '127.0.0.1', PORT: String(await freePort()), METRICS_PORT: String(await freePort()), ...liveEnv(simulator.origin) }
  })
  const origin = await server.listening

  const health = await request(`${origin}/healthz`)
  assert.equal(health.statusCode, 200)
  await health.body.dump()
  const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(GOOD_BRIEF) })
  assert.equal(response.statusCode, 200)
  assert.deepEqual((await response.body.json() as { warnings: unknown[] }).warnings, [])
})
