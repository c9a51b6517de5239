// npm run bench:stream [-- --streams 100 --pace-scale 0.1 --name NAME]
// N callers open a stream (Accept: text/event-stream) at once against the simulator at a provider's
// pace times the scale; reports time to `accepted`, time to the first delta against the plan plus
// the first token, how every stream ended, and the service's memory per open stream (RSS at the
// peak of open streams over RSS idle, from /proc). Only 127.0.0.1; every process stopped by PID.
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createParser } from 'eventsource-parser'
import { Agent, request } from 'undici'
import { freePort, liveEnv } from '../test/spawn.ts'
import { startProcess } from './lib/processes.ts'
import { percentile } from './lib/sample.ts'

const { values } = parseArgs({ options: { streams: { type: 'string', default: '100' }, 'pace-scale': { type: 'string', default: '0.1' }, name: { type: 'string' } } })
const streams = Number(values.streams)
const scale = Number(values['pace-scale'])
const name = values.name ?? `stream-${streams}`
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024

const simulator = await startProcess(['src/simulator/main.ts', '--port', '0', '--pace', 'real', '--pace-scale', String(scale), '--keep-alive-ms', '60000'], {}, /"origin":"(http:\/\/127\.0\.0\.1:\d+)"/)
const service = await startProcess(['--expose-gc', '--import', './bench/probe.ts', '--import', './dist/telemetry.js', 'dist/server.js'], {
  // The probe forces a GC every 500 ms and reports the heap after it: what each open stream holds.
  BENCH_GC_INTERVAL_MS: '500',
  PORT: String(await freePort()),
  METRICS_PORT: String(await freePort()),
  LOG_LEVEL: 'info',
  ...liveEnv(simulator.origin),
  // Capacity for this many streams at once: every one holds an image and four sections (one origin).
  MAX_CONCURRENT_REQUESTS: String(streams + 10),
  UPSTREAM_CONNECTIONS: String(Math.min(4096, Math.max(64, streams * 5))),
  UPSTREAM_MAX_QUEUED: String(streams * 8)
}, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
const dispatcher = new Agent({ connections: streams })
try {
  // Callers are systems that keep their connections: open them first, as a pool in use would have.
  await Promise.all(Array.from({ length: streams }, async () => {
    const response = await request(`${service.origin}/healthz`, { dispatcher })
    await response.body.dump()
  }))
  // And a first round of posts, so the figures are those of a running instance, not of its JIT.
  await Promise.all(Array.from({ length: Math.min(streams, 20) }, async (_, index) => {
    const response = await request(`${service.origin}/generate`, {
      dispatcher, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: `warm-up ${index}`, length: 'short', image: false }), headersTimeout: 0, bodyTimeout: 0
    })
    await response.body.dump()
  }))
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  const idle = rssMiB(service.pid)
  const heapAfterGc = () => (service.probes.findLast((probe) => probe.heapAfterGc !== undefined)?.heapAfterGc ?? 0) / 1048576
  const idleHeap = heapAfterGc()
  let open = 0
  let peakOpen = 0
  let peakRss = idle
  let peakHeap = idleHeap
  const sampler = setInterval(() => {
    if (open < peakOpen * 0.95) return
    peakRss = Math.max(peakRss, rssMiB(service.pid))
    peakHeap = Math.max(peakHeap, heapAfterGc())
  }, 100)
  const results = await Promise.all(Array.from({ length: streams }, async (_, index) => {
    const started = performance.now()
    const at: Record<string, number> = {}
    let ending = 'none'
    const response = await request(`${service.origin}/generate`, {
      dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ topic: `streams, caller ${index}`, length: 'medium' }),
      headersTimeout: 0,
      bodyTimeout: 0
    })
    open++
    peakOpen = Math.max(peakOpen, open)
    const parser = createParser({
      onEvent: (event) => {
        const type = event.event ?? 'message'
        at[type] ??= performance.now() - started
        if (type === 'result') ending = type
        if (type === 'error') ending = `error ${JSON.parse(event.data).error.code}`
      }
    })
    // An answer before the stream started is an HTTP status with a JSON body: counted by its status.
    if (response.statusCode !== 200) ending = `status ${response.statusCode}`
    for await (const chunk of response.body) parser.feed(String(chunk))
    open--
    return { status: response.statusCode, at, ending }
  }))
  clearInterval(sampler)

  const endings: Record<string, number> = {}
  for (const result of results) endings[result.ending] = (endings[result.ending] ?? 0) + 1
  const accepted = results.map((r) => r.at.accepted ?? Infinity)
  // First delta after the plan event, in real time, against the first token the pace promises (0.5 s).
  const afterPlan = results.filter((r) => r.at.delta !== undefined && r.at.plan !== undefined).map((r) => (r.at.delta! - r.at.plan!) / scale)
  const lines = [
    `# ${name}`, '',
    `${new Date().toISOString()} · Node ${process.version} · ${streams} streams opened at once · medium posts · pace × ${scale}`, '',
    '| figure | measured |', '|---|---|',
    `| endings | ${JSON.stringify(endings)} (a 200 stream with neither result nor error: ${endings.none ?? 0}) |`,
    `| time to \`accepted\`, p50 / p99 | ${percentile(accepted, 50).toFixed(1)} / **${percentile(accepted, 99).toFixed(1)} ms** |`,
    `| time to the first delta, p50, real time | ${(percentile(results.map((r) => r.at.delta ?? Infinity), 50) / scale / 1000).toFixed(2)} s |`,
    `| time to the plan, p50, real time | ${(percentile(results.map((r) => r.at.plan ?? Infinity), 50) / scale / 1000).toFixed(2)} s |`,
    `| first delta after the plan, p50 / p99, real time (target ≤ first token 0.5 s + 0.1 s) | ${(percentile(afterPlan, 50) / 1000).toFixed(2)} / **${(percentile(afterPlan, 99) / 1000).toFixed(2)} s** |`,
    `| open streams at the peak | ${peakOpen} |`,
    `| service heap after GC, idle → with the streams open | ${idleHeap.toFixed(1)} → ${peakHeap.toFixed(1)} MiB: **${((peakHeap - idleHeap) * 1024 / Math.max(1, peakOpen)).toFixed(0)} KiB per open stream** |`,
    `| service RSS idle → at the peak | ${idle.toFixed(1)} → ${peakRss.toFixed(1)} MiB: ${((peakRss - idle) * 1024 / Math.max(1, peakOpen)).toFixed(0)} KiB per open stream, garbage included (no heap limit: V8 sizes it from 24 GiB) |`
  ]
  mkdirSync(new URL('./reports/', import.meta.url), { recursive: true })
  writeFileSync(new URL(`./reports/${name}.md`, import.meta.url), lines.join('\n') + '\n')
  console.log(lines.join('\n'))
} finally {
  await dispatcher.close()
  await service.stop()
  await simulator.stop()
}
