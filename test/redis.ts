import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { TestContext } from 'node:test'
import { freePort } from './spawn.ts'

/**
 * A real redis-server of the test's own, on a free loopback port, without persistence; stopped by
 * PID when the test ends. .ci/run installs Debian's redis-server. When it cannot start, this throws:
 * a test that needs Redis fails, it never skips.
 */
export async function startRedis (t: TestContext) {
  const port = await freePort()
  let child: ChildProcess | undefined

  async function start () {
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
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

  t.after(stop)
  await start()
  return { url: `redis://127.0.0.1:${port}`, port, start, stop, pid: () => child?.pid }
}
