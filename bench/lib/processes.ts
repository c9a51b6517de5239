import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { freePort, liveEnv } from '../../test/spawn.ts'

const ROOT = new URL('../../', import.meta.url).pathname

export interface Started {
  child: ChildProcess
  pid: number
  origin: string
  /** Probe lines (fd 3), newest last; empty for processes started without the probe. */
  probes: Array<Record<string, number>>
  stop: () => Promise<number | null>
}

/**
 * Spawns `node ...args` from the repository root and waits for the line naming its origin.
 * Every process started here is stopped by PID: by stop(), or on exit of the bench itself.
 */
export async function startProcess (args: string[], env: Record<string, string>, originPattern: RegExp, waitForOrigin = true): Promise<Started> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe']
  })
  const pid = child.pid!
  const kill = () => { try { process.kill(pid, 'SIGKILL') } catch {} }
  process.once('exit', kill)

  const probes: Array<Record<string, number>> = []
  const probeStream = child.stdio[3] as NodeJS.ReadableStream | null
  if (probeStream) createInterface({ input: probeStream }).on('line', (line) => probes.push(JSON.parse(line)))

  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  // The cold-start bench times readiness itself, from outside: it starts polling at once.
  let origin = ''
  if (waitForOrigin) {
    origin = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: no origin in 15 s\n${stderr}`)), 15_000)
      const lines = createInterface({ input: child.stdout! })
      lines.on('line', (line) => {
        const match = originPattern.exec(line)
        if (match !== null) {
          clearTimeout(timer)
          resolve(match[1]!)
          // Keep draining stdout (the service logs every request) without splitting it into lines.
          lines.close()
          child.stdout!.resume()
        }
      })
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${args.join(' ')} exited ${code} before listening\n${stderr}`)) })
    })
  } else {
    child.stdout!.resume()
  }

  return {
    child,
    pid,
    origin,
    probes,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      const exited = once(child, 'exit')
      process.kill(pid, 'SIGTERM')
      const timer = setTimeout(kill, 15_000)
      const [code] = await exited as [number | null]
      clearTimeout(timer)
      process.removeListener('exit', kill)
      return code
    }
  }
}

export function startSimulatorProcess (latencyMs: number, keepAliveMs: number, extraArgs: string[] = []) {
  return startProcess(
    ['src/simulator/main.ts', '--port', '0', '--latency', String(latencyMs), '--keep-alive-ms', String(keepAliveMs), ...extraArgs],
    {},
    /"origin":"(https?:\/\/127\.0\.0\.1:\d+)"/
  )
}

export type Variant = 'service' | 'reference' | 'leaky'

export async function startVariant (variant: Variant, simulatorOrigin: string, pool: number, extraEnv: Record<string, string> = {}, nodeArgs: string[] = []) {
  const probe = [...nodeArgs, '--expose-gc', '--import', './bench/probe.ts']
  const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/
  if (variant === 'service') {
    // The production start (the build, with the telemetry preload), with live providers that
    // happen to be the simulator.
    const metricsPort = await freePort()
    const started = await startProcess([...probe, '--import', './dist/telemetry.js', 'dist/server.js'], {
      PORT: '0',
      ...liveEnv(simulatorOrigin),
      UPSTREAM_CONNECTIONS: String(pool),
      METRICS_PORT: String(metricsPort),
      ...extraEnv
    }, listening)
    return { ...started, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` }
  }
  const started = await startProcess([...probe, 'bench/variants/main.ts', variant], {
    PORT: '0', SIMULATOR_ORIGIN: simulatorOrigin, UPSTREAM_CONNECTIONS: String(pool), ...extraEnv
  }, listening)
  return { ...started, metricsUrl: undefined }
}

/**
 * Pins a process, every thread of it, to the given CPUs (taskset's list, "0" or "1-3"). In
 * production the service has its vCPUs to itself; on a bench machine the simulator and the driver
 * would otherwise compete with it for the same cores, and their work would count as its latency.
 * Returns false, and changes nothing, on a machine with a single core or without taskset.
 */
const CPUS = availableParallelism()

export function pin (pid: number, cpus: string) {
  // Read once, before any pinning: availableParallelism() follows this process's own affinity,
  // and reads 1 once the driver has pinned itself.
  if (CPUS < 2) return false
  // taskset -a walks the process's threads; one that exits meanwhile fails the call: try again.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' })
      return true
    } catch {}
  }
  return false
}
