import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { TestContext } from 'node:test'

const ROOT = new URL('../', import.meta.url).pathname

/** The container's command line (Dockerfile CMD): the build, with the telemetry preload. */
export const PRODUCTION_ARGS = ['--import', './dist/telemetry.js', 'dist/server.js']

export interface StartOptions {
  args?: string[]
  env?: Record<string, string>
  /** Extra pipe on fd 3, for preloads that report to the test. */
  fd3?: boolean
  cwd?: string
}

/** Starts the service as a real process from the repository root; killed by PID when the test ends. */
export function startServerProcess (t: TestContext, { args = ['src/server.ts'], env = {}, fd3 = false, cwd = ROOT }: StartOptions = {}) {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe', fd3 ? 'pipe' : 'ignore']
  })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line in 15 s:\n${stdout}\n${stderr}`)), 15_000)
    child.stdout!.on('data', () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
    exited.then(() => { clearTimeout(timer); reject(new Error(`exited before listening:\n${stderr}`)) }, reject)
  })
  listening.catch(() => {})
  return { child, listening, exited, output: () => ({ stdout, stderr }) }
}

/** A port that was free a moment ago, for listeners whose port cannot be read back (the metrics endpoint). */
export async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** PROVIDERS=live pointed at a simulator origin, with keys that tests can look for in the output. */
export function liveEnv (origin: string) {
  return {
    PROVIDERS: 'live',
    AUTH_MODE: 'none',
    LLM_BASE_URL: `${origin}/v1`,
    LLM_API_KEY: 'sk-test-llm-SECRET-1f3a',
    LLM_MODEL: 'simulator-llm',
    IMAGE_BASE_URL: `${origin}/v1`,
    IMAGE_API_KEY: 'sk-test-image-SECRET-9c2e',
    IMAGE_MODEL: 'simulator-image',
    LANGUAGE_BASE_URL: origin,
    LANGUAGE_API_KEY: 'goog-test-SECRET-77b0'
  }
}
