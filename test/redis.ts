import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { TestContext } from 'node:test'
import { freePort } from './spawn.ts'

/**
 * A real redis-server of the test's own, on a free loopback port, without persistence; stopped by
 * PID when the test ends. .ci/run installs Debian's redis-server. When it cannot start, this throws:
 * a test that needs Redis fails, it never skips.
 */
export async function startRedis (t: TestContext, options: LaunchOptions = {}) {
  const redis = await launchRedis(options)
  t.after(redis.stop)
  return redis
}

export interface LaunchOptions {
  /** Serve TLS only, with this certificate, key and CA (PEM files). */
  tls?: { cert: string, key: string, ca: string }
  /** An AUTH password (requirepass). */
  password?: string
}

/** The same, for scripts without a test context (the benches): the caller stops it. */
export async function launchRedis (options: LaunchOptions = {}) {
  const port = await freePort()
  const listen = options.tls === undefined
    ? ['--port', String(port)]
    : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.cert, '--tls-key-file', options.tls.key, '--tls-ca-cert-file', options.tls.ca, '--tls-auth-clients', 'no']
  const auth = options.password === undefined ? [] : ['--requirepass', options.password]
  let child: ChildProcess | undefined

  async function start () {
    const server = spawn('redis-server', [...listen, ...auth, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = server
    let output = ''
    server.stdout!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    server.stderr!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    const failed = new Promise<never>((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`redis-server could not start (is Debian's redis-server installed? .ci/run installs it): ${error.message}`)))
      server.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)))
    })
    const ready = new Promise<void>((resolve) => {
      server.stdout!.on('data', () => { if (output.includes('Ready to accept connections')) resolve() })
    })
    const timeout = new Promise<never>((resolve, reject) => setTimeout(() => reject(new Error(`redis-server not ready in 10 s:\n${output}`)), 10_000).unref())
    await Promise.race([ready, failed, timeout])
    failed.catch(() => {})
  }

  async function stop () {
    const server = child
    child = undefined
    if (server === undefined || server.exitCode !== null || server.signalCode !== null) return
    const exited = once(server, 'exit')
    process.kill(server.pid!, 'SIGKILL')
    await exited
  }

  await start()
  const scheme = options.tls === undefined ? 'redis' : 'rediss'
  const credentials = options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`
  return { url: `${scheme}://${credentials}127.0.0.1:${port}`, port, start, stop, pid: () => child?.pid }
}
