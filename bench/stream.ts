// npm run bench:stream [-- --streams 100 --bursts 3 --pace-scale 0.1 --tls --node-args="FLAGS" --name NAME]
// N callers open a stream (Accept: text/event-stream) at once, in B bursts one after another,
// against the simulator at a provider's pace times the scale; reports time to `accepted` (and its
// parts: waiting to be read, the service's own time, the way back), time to
// the first delta against the plan plus the first token, how every stream ended, and the service's
// memory per open stream (heap after GC, and RSS at the peak of open streams over RSS idle). With
// --tls the simulator serves HTTPS and the service speaks HTTP/2 to it, as it does to real providers
// (UPSTREAM_HTTP2 is on by default); without, plain HTTP/1.1. Only 127.0.0.1; every process stopped by PID.
import { subscribe } from 'node:diagnostics_channel'
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createParser } from 'eventsource-parser'
import { Agent, request } from 'undici'
import { freePort, liveEnv } from '../test/spawn.ts'
import { availableParallelism } from 'node:os'
import { pin, startProcess } from './lib/processes.ts'
import { throwawayCertificates } from '../test/tls.ts'
import { percentile } from './lib/sample.ts'

const { values } = parseArgs({ options: { streams: { type: 'string', default: '100' }, bursts: { type: 'string', default: '3' }, 'pace-scale': { type: 'string', default: '0.1' }, tls: { type: 'boolean', default: false }, 'node-args': { type: 'string' }, name: { type: 'string' } } })
const streams = Number(values.streams)
const bursts = Number(values.bursts)
const scale = Number(values['pace-scale'])
const name = values.name ?? `stream-${streams}${values.tls ? '-tls' : ''}`
const tls = values.tls ? throwawayCertificates('stream', (remove) => process.once('exit', remove)) : undefined
const WARM_UP_BURSTS = 10
const microseconds = () => Number(process.hrtime.bigint() / 1000n)
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024

const simulator = await startProcess(['src/simulator/main.ts', '--port', '0', '--pace', 'real', '--pace-scale', String(scale), '--keep-alive-ms', '60000', ...(tls === undefined ? [] : ['--tls-cert', tls.cert, '--tls-key', tls.key])], {}, /"origin":"(https?:\/\/127\.0\.0\.1:\d+)"/)
// --node-args: extra flags for the service's node, such as --cpu-prof (the JSON report has each
// burst's read window on the clock V8's profile timestamps use).
const service = await startProcess([...(values['node-args']?.split(/\s+/).filter(Boolean) ?? []), '--expose-gc', '--import', './bench/probe.ts', '--import', './dist/telemetry.js', 'dist/server.js'], {
  PORT: String(await freePort()),
  METRICS_PORT: String(await freePort()),
  LOG_LEVEL: 'info',
  ...liveEnv(simulator.origin),
  // Capacity for this many streams at once: every one holds an image and four sections (one origin).
  MAX_CONCURRENT_REQUESTS: String(streams + 10),
  UPSTREAM_CONNECTIONS: String(Math.min(4096, Math.max(64, streams * 5))),
  UPSTREAM_MAX_QUEUED: String(streams * 8),
  ...(tls === undefined ? {} : { UPSTREAM_TLS_CA_FILE: tls.ca })
}, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
// The service gets core 0 to itself, as a Cloud Run instance has its vCPU; the simulator and this
// driver share the others.
const others = `1-${availableParallelism() - 1}`
const pinned = pin(service.pid, '0') && pin(simulator.pid, others) && pin(process.pid, others)
const dispatcher = new Agent({ connections: streams })
try {
  // The figures are those of a running instance, not of its JIT: before the measured burst, short
  // posts in both modes read to the end, then bursts of streams whose callers leave once accepted
  // (all callers at once each time, as in the measured burst). A first burst on a cold process is
  // ~2× slower: that is cold start, a figure of its own (docs/measured.md).
  const post = (index: number, stream: boolean) => request(`${service.origin}/generate`, {
    dispatcher,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(stream ? { accept: 'text/event-stream' } : {}) },
    body: JSON.stringify({ topic: `warm-up ${index}`, length: 'short', image: false }),
    headersTimeout: 0,
    bodyTimeout: 0
  })
  await Promise.all(Array.from({ length: Math.min(streams, 20) }, async (_, index) => {
    for (const stream of [false, true]) await (await post(index, stream)).body.dump()
  }))
  for (let burst = 0; burst < WARM_UP_BURSTS; burst++) {
    await Promise.all(Array.from({ length: streams }, async (_, index) => {
      const response = await post(index, true)
      for await (const chunk of response.body) if (String(chunk).includes('event: accepted')) break
    }))
    await new Promise((resolve) => setTimeout(resolve, 300))
  }
  // Callers are systems that keep their connections (the bursts above closed theirs): open them
  // again, as a pool in use would have them.
  await Promise.all(Array.from({ length: streams }, async () => {
    const response = await request(`${service.origin}/healthz`, { dispatcher })
    await response.body.dump()
  }))
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  const idle = rssMiB(service.pid)
  // The heap after a forced GC (SIGWINCH to the probe): what the open streams hold, garbage aside.
  const heapAfterGc = async () => {
    const seen = service.probes.length
    process.kill(service.pid, 'SIGWINCH')
    while (service.probes.slice(seen).every((probe) => probe.heapAfterGc === undefined)) await new Promise((resolve) => setTimeout(resolve, 10))
    return service.probes.slice(seen).find((probe) => probe.heapAfterGc !== undefined)!.heapAfterGc! / 1048576
  }
  const idleHeap = await heapAfterGc()
  let open = 0
  let peakOpen = 0
  let peakRss = idle
  let peakHeap = idleHeap
  let firstDeltas = 0
  let sampling = false
  // Memory is sampled only once every caller has its first delta. A forced GC stops the service
  // for 40–90 ms: it is the bench's instrument, and must not stall the moments whose timing is
  // measured (accepted, first delta). The sections are still being written then, when a stream
  // holds the most.
  const sampler = setInterval(() => {
    if (firstDeltas < streams || open < peakOpen * 0.95 || sampling) return
    peakRss = Math.max(peakRss, rssMiB(service.pid))
    sampling = true
    heapAfterGc().then((heap) => { peakHeap = Math.max(peakHeap, heap) }, () => {}).finally(() => { sampling = false })
  }, 500)
  // When each request's headers left this driver: its 100 request() calls run back to back on one
  // core, so the last caller's bytes leave ~10 ms after its call. Time to accepted is reported both
  // ways: from the call, and from the moment the service could first have read the request.
  // On CLOCK_MONOTONIC (process.hrtime), as the probe in the service stamps when it read each
  // request: the two processes' stamps compare.
  const sentAt = new Map<string, number>()
  subscribe('undici:client:sendHeaders', (message) => {
    const headers = (message as { request: { headers: string[] } }).request.headers
    const at = headers.indexOf('x-bench-caller')
    if (at >= 0) sentAt.set(headers[at + 1]!, microseconds())
  })
  // Each burst's p99 is its slowest caller or two: one GC or a stall of this VM's host moves it by
  // tens of milliseconds. Several bursts, one after another, give the figures with their spread.
  // Each burst opens on an instance at rest: a second after the last one's streams have ended,
  // when the service has closed them and written their access lines. Without the pause, a burst's
  // requests could arrive while that work still ran (one CPU profile showed a 170 ms busy stretch
  // holding both), and its time to accepted counted it.
  const results: Array<{ caller: string, status: number, at: Record<string, number>, ending: string }> = []
  const burstP99: number[] = []
  for (let burst = 0; burst < bursts; burst++) {
    if (burst > 0) await new Promise((resolve) => setTimeout(resolve, 1_000))
    firstDeltas = 0
    const round = await Promise.all(Array.from({ length: streams }, (_, index) => open1(`${burst}-${index}`)))
    burstP99.push(percentile(round.map((r) => r.at.accepted ?? Infinity), 99))
    results.push(...round)
  }
  clearInterval(sampler)

  async function open1 (caller: string) {
    const started = performance.now()
    const at: Record<string, number> = {}
    let ending = 'none'
    const response = await request(`${service.origin}/generate`, {
      dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'x-bench-caller': caller },
      body: JSON.stringify({ topic: `streams, caller ${caller}`, length: 'medium' }),
      headersTimeout: 0,
      bodyTimeout: 0
    })
    open++
    peakOpen = Math.max(peakOpen, open)
    // The service's own time to the accepted event (its Server-Timing), from its onRequest.
    at.service = Number(/app;dur=([\d.]+)/.exec(String(response.headers['server-timing']))?.[1])
    const parser = createParser({
      onEvent: (event) => {
        const type = event.event ?? 'message'
        if (type === 'delta' && at.delta === undefined) firstDeltas++
        at[type] ??= performance.now() - started
        if (type === 'accepted') at.acceptedFromSent = (microseconds() - sentAt.get(caller)!) / 1000
        if (type === 'result') ending = type
        if (type === 'error') ending = `error ${JSON.parse(event.data).error.code}`
      }
    })
    // An answer before the stream started is an HTTP status with a JSON body: counted by its status.
    if (response.statusCode !== 200) ending = `status ${response.statusCode}`
    for await (const chunk of response.body) parser.feed(String(chunk))
    open--
    return { caller, status: response.statusCode, at, ending }
  }

  // Time to accepted, from the request leaving this driver, in three parts: waiting to be read
  // (until the service's HTTP parser hands the request on: the loop was busy with the callers
  // before it), the service's own time, and the way back. The probe sends its read times once a
  // second; the streams have run for seconds since the last burst's requests were read.
  const readAt: Record<string, number> = Object.assign({}, ...service.probes.map((probe) => (probe as { readAtUs?: Record<string, number> }).readAtUs ?? {}))
  const waiting = results.map((r) => (readAt[r.caller]! - sentAt.get(r.caller)!) / 1000)
  const inService = results.map((r) => r.at.service!)
  const back = results.map((r, index) => r.at.acceptedFromSent! - waiting[index]! - inService[index]!)
  const readSpans = Array.from({ length: bursts }, (_, burst) => {
    const times = results.filter((r) => r.caller.startsWith(`${burst}-`)).map((r) => readAt[r.caller]!)
    return (Math.max(...times) - Math.min(...times)) / 1000
  })
  const p5099 = (values: number[]) => `${percentile(values, 50).toFixed(1)} / ${percentile(values, 99).toFixed(1)}`

  const endings: Record<string, number> = {}
  for (const result of results) endings[result.ending] = (endings[result.ending] ?? 0) + 1
  const acceptedMs = results.map((r) => r.at.accepted ?? Infinity)
  const fromSent = results.map((r) => r.at.acceptedFromSent ?? Infinity)
  // First delta after the plan event, in real time, against the first token the pace promises (0.5 s).
  const afterPlan = results.filter((r) => r.at.delta !== undefined && r.at.plan !== undefined).map((r) => (r.at.delta! - r.at.plan!) / scale)
  const lines = [
    `# ${name}`, '',
    `${new Date().toISOString()} · Node ${process.version} · ${bursts} bursts of ${streams} streams opened at once, one after another · medium posts · pace × ${scale} · ${tls === undefined ? 'upstreams over plain HTTP/1.1' : 'upstreams over HTTPS, HTTP/2'} · ${pinned ? 'service pinned to core 0, simulator and driver on the others' : 'not pinned: service, simulator and driver share the cores'}`, '',
    '| figure | measured |', '|---|---|',
    `| endings | ${JSON.stringify(endings)} (a 200 stream with neither result nor error: ${endings.none ?? 0}) |`,
    `| time to \`accepted\`, p50 / p99: from the call | ${percentile(acceptedMs, 50).toFixed(1)} / **${percentile(acceptedMs, 99).toFixed(1)} ms**; p99 of each burst: ${burstP99.map((ms) => ms.toFixed(1)).join(', ')} ms |`,
    `| time to \`accepted\`, p50 / p99: from the request leaving the driver | ${percentile(fromSent, 50).toFixed(1)} / **${percentile(fromSent, 99).toFixed(1)} ms** |`,
    `| the same in parts, p50 / p99: waiting to be read · in the service · back to the caller | ${p5099(waiting)} · ${p5099(inService)} · ${p5099(back)} ms |`,
    `| the service reading a burst: first request read to the last, each burst | ${readSpans.map((ms) => ms.toFixed(1)).join(', ')} ms: one request every ${(readSpans.reduce((sum, ms) => sum + ms, 0) / bursts / Math.max(1, streams - 1) * 1000).toFixed(0)} µs |`,
    `| time to the first delta, p50, real time | ${(percentile(results.map((r) => r.at.delta ?? Infinity), 50) / scale / 1000).toFixed(2)} s |`,
    `| time to the plan, p50, real time | ${(percentile(results.map((r) => r.at.plan ?? Infinity), 50) / scale / 1000).toFixed(2)} s |`,
    `| first delta after the plan, p50 / p99, real time (target ≤ first token 0.5 s + 0.1 s) | ${(percentile(afterPlan, 50) / 1000).toFixed(2)} / **${(percentile(afterPlan, 99) / 1000).toFixed(2)} s** |`,
    `| open streams at the peak | ${peakOpen} |`,
    `| service heap after GC, idle → with the streams open | ${idleHeap.toFixed(1)} → ${peakHeap.toFixed(1)} MiB: **${((peakHeap - idleHeap) * 1024 / Math.max(1, peakOpen)).toFixed(0)} KiB per open stream** |`,
    `| service RSS idle → at the peak | ${idle.toFixed(1)} → ${peakRss.toFixed(1)} MiB: ${((peakRss - idle) * 1024 / Math.max(1, peakOpen)).toFixed(0)} KiB per open stream, garbage included (no heap limit: V8 sizes it from 24 GiB) |`
  ]
  const readWindowsUs = Array.from({ length: bursts }, (_, burst) => {
    const times = results.filter((r) => r.caller.startsWith(`${burst}-`)).map((r) => readAt[r.caller]!)
    return { fromUs: Math.min(...times), toUs: Math.max(...times) }
  })
  mkdirSync(new URL('./reports/', import.meta.url), { recursive: true })
  writeFileSync(new URL(`./reports/${name}.md`, import.meta.url), lines.join('\n') + '\n')
  writeFileSync(new URL(`./reports/${name}.json`, import.meta.url), JSON.stringify({ name, at: new Date().toISOString(), node: process.version, streams, bursts, scale, tls: tls !== undefined, readWindowsUs, results }, null, 2))
  console.log(lines.join('\n'))
} finally {
  await dispatcher.close()
  await service.stop()
  await simulator.stop()
}
