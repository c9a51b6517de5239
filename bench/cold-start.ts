// npm run bench:cold-start [-- --runs 5]: time from spawning the production command (the build,
// telemetry preloaded) to the first 200 on /healthz, and to the first 200 on /generate.
import { mkdirSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { freePort, liveEnv } from '../test/spawn.ts'
import { startProcess, startSimulatorProcess } from './lib/processes.ts'
import { median } from './lib/sample.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } })
const runs = Number(values.runs)
const BRIEF = JSON.stringify({ topic: 'cold starts on Cloud Run' })

async function firstOk (send: () => Promise<number>, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (await send().catch(() => 0) === 200) return performance.now()
    await sleep(2)
  }
  throw new Error('no 200 in time')
}

const simulator = await startSimulatorProcess(0, 5_000)
const results: Array<{ readyMs: number, firstGenerateMs: number }> = []
try {
  for (let run = 0; run < runs; run++) {
    const port = await freePort()
    const origin = `http://127.0.0.1:${port}`
    const started = performance.now()
    const service = await startProcess(['--import', './dist/telemetry.js', 'dist/server.js'], {
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
      ...liveEnv(simulator.origin)
    }, /(.+)/, false)
    try {
      const ready = await firstOk(async () => {
        const response = await request(`${origin}/healthz`, { reset: true })
        await response.body.dump()
        return response.statusCode
      }, 10_000)
      const generated = await firstOk(async () => {
        const response = await request(`${origin}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: BRIEF, reset: true })
        await response.body.dump()
        return response.statusCode
      }, 10_000)
      results.push({ readyMs: Math.round(ready - started), firstGenerateMs: Math.round(generated - started) })
    } finally {
      await service.stop()
    }
  }
} finally {
  await simulator.stop()
}

const summary = {
  runs,
  node: process.version,
  readyMs: median(results.map((r) => r.readyMs)),
  firstGenerateMs: median(results.map((r) => r.firstGenerateMs)),
  results
}
const line = `Cold start, median of ${runs}: spawn → first 200 on /healthz ${summary.readyMs} ms; → first 200 on /generate ${summary.firstGenerateMs} ms (each run: ${results.map((r) => `${r.readyMs}/${r.firstGenerateMs}`).join(', ')} ms)`
mkdirSync(new URL('./reports/', import.meta.url), { recursive: true })
writeFileSync(new URL('./reports/cold-start.json', import.meta.url), JSON.stringify(summary, null, 2))
writeFileSync(new URL('./reports/cold-start.md', import.meta.url), `# cold start\n\n${line}\n`)
console.log(line)
