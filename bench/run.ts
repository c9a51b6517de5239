// npm run bench [-- --compare] [-- --soak]: see USAGE. Starts every process it measures and
// stops each by PID; talks only to 127.0.0.1; every load is bounded by time or by count.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { PEAK_CALLS_PER_ORIGIN } from '../src/config.ts'
import { chart } from './lib/chart.ts'
import { median, trustSimulatorCa } from './lib/sample.ts'
import { runScenario, type ScenarioOptions, type ScenarioResult } from './lib/scenario.ts'
import { throwawayCertificates } from '../test/tls.ts'

const USAGE = `npm run bench -- [--duration 30] [--connections 50] [--latency 0] [--pool 64] [--runs 1] [--rate REQ_PER_S]
                     [--compare [--leaky-requests 2000]] [--soak] [--telemetry-cost] [--chaos RATE]
                     [--capacity [--pace-scale 0.25] [--ramp SECONDS] [--overload F]] [--tls] [--http2-cost] [--node-args="FLAGS"] [--env NAME=VALUE]... [--name NAME]
  --compare  this service, a minimal reference (bare Fastify + one Agent) and the incident's pattern
  --soak     the service alone, 10 minutes by default, forcing a GC every 30 s to read the heap
  --telemetry-cost  the service with its telemetry preload on and off (OTEL_SDK_DISABLED=true)
  --chaos RATE  every upstream call meets a random fault with probability RATE (reset, 5xx,
             malformed, wrong shape, slow, hang); short posts, REQUEST_TIMEOUT_MS=3000, 500 ms per
             attempt; reports the success rate, retry amplification, breaker changes, p99, RSS, fds
  --capacity  the service and the minimal reference at a provider's pace (--pace-scale, default
             0.25), 1,000 callers (--connections) of long posts for 60 s, each on one core (the
             driver and simulator on the other) with the heap a 1 GiB Cloud Run instance gives it;
             MAX_CONCURRENT_REQUESTS and UPSTREAM_CONNECTIONS at the caller count. Reports non-2xx,
             p50 and p99 against the critical path, event-loop delay, RSS, fds, connections, CPU
  --overload F  with --capacity: the service admits --connections N (MAX_CONCURRENT_REQUESTS), and
             F x N callers each ask at most once a second (a refused one asks again within the
             second, as Retry-After: 1 says). The service alone; reports the admitted answers
             against the path and how fast the refused got their 503. Run it beside a plain
             --capacity run at N to compare the admitted
  --ramp S   start the callers in groups spread over S seconds (capacity default: one critical
             path, so that they arrive as independent callers do); --ramp 0 starts all at once
  --tls      the simulator serves HTTPS (a throwaway certificate the service trusts) and speaks
             HTTP/2 or HTTP/1.1 as the service offers, like the providers' front ends
  --http2-cost  over --tls, the service with UPSTREAM_HTTP2=true and =false, alternated:
             upstream connections, fds, RSS, CPU, p99
  --node-args="FLAGS"  extra flags for the measured processes' node (space-separated, after the
             bench's own; the = is needed, since the flags start with a dash)
  --env NAME=VALUE  configuration for the service, over the bench's own (repeat for more)`

const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    connections: { type: 'string' },
    latency: { type: 'string', default: '0' },
    rate: { type: 'string' },
    pool: { type: 'string' },
    runs: { type: 'string', default: '1' },
    compare: { type: 'boolean', default: false },
    'telemetry-cost': { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    'http2-cost': { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    chaos: { type: 'string' },
    capacity: { type: 'boolean', default: false },
    overload: { type: 'string' },
    'pace-scale': { type: 'string', default: '0.25' },
    'leaky-requests': { type: 'string', default: '2000' },
    'node-args': { type: 'string' },
    ramp: { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
    name: { type: 'string' },
    help: { type: 'boolean', default: false }
  }
})
if (values.help) {
  console.log(USAGE)
  process.exit(0)
}
const positive = (name: string, text: string) => {
  const number = Number(text)
  if (!Number.isInteger(number) || number < 0) {
    console.error(`--${name} must be a whole number, got "${text}"\n${USAGE}`)
    process.exit(2)
  }
  return number
}

function probability (name: string, text: string) {
  const number = Number(text)
  if (!(number >= 0 && number <= 1)) {
    console.error(`--${name} must be a probability from 0 to 1, got "${text}"\n${USAGE}`)
    process.exit(2)
  }
  return number
}

const capacity = values.capacity
const overload = values.overload === undefined ? undefined : positive('overload', values.overload)
if (overload !== undefined && (!capacity || overload < 2)) {
  console.error(`--overload goes with --capacity and takes a whole number from 2\n${USAGE}`)
  process.exit(2)
}
const http2Cost = values['http2-cost']
// A throwaway CA and certificate for the simulator's HTTPS; this process trusts it for its own
// reads of the simulator's stats, and the service through UPSTREAM_TLS_CA_FILE.
const tls = values.tls || http2Cost ? throwawayCertificates('bench', (remove) => process.once('exit', remove)) : undefined
if (tls !== undefined) trustSimulatorCa(readFileSync(tls.ca, 'utf8'))
const paceScale = Number(values['pace-scale'])
const callers = positive('connections', values.connections ?? (capacity ? '1000' : '50'))
// The critical path at this pace: the image (15 s real), which the text path of a long post
// (about 9 s: plan, then the longest section) runs beside (bench:pace, docs/measured.md).
const pathMs = 15_000 * paceScale
const rampS = values.ramp === undefined ? (capacity ? pathMs / 1000 : 0) : Number(values.ramp)
if (!(rampS >= 0)) {
  console.error(`--ramp must be a number of seconds, got "${values.ramp}"\n${USAGE}`)
  process.exit(2)
}
const extraEnv: Record<string, string> = {}
for (const pair of values.env) {
  const at = pair.indexOf('=')
  if (at < 1) {
    console.error(`--env takes NAME=VALUE, got "${pair}"\n${USAGE}`)
    process.exit(2)
  }
  extraEnv[pair.slice(0, at)] = pair.slice(at + 1)
}
const extraNodeArgs = values['node-args']?.split(/\s+/).filter(Boolean) ?? []
const base: Omit<ScenarioOptions, 'variant'> = {
  durationS: positive('duration', values.duration ?? (values.soak ? '600' : capacity ? '60' : '30')),
  connections: callers * (overload ?? 1),
  ...(overload === undefined ? {} : { connectionRate: 1 }),
  latencyMs: positive('latency', values.latency),
  pool: positive('pool', values.pool ?? (capacity ? String(Math.min(4096, callers * PEAK_CALLS_PER_ORIGIN)) : '64')),
  ...(values.rate === undefined ? {} : { rate: positive('rate', values.rate) }),
  ...(rampS > 0 ? { rampS } : {}),
  log: (line) => console.error(`[bench] ${line}`),
  ...(values.soak ? { gcEveryMs: 30_000 } : {}),
  ...(values.chaos === undefined ? {} : { chaos: probability('chaos', values.chaos) }),
  ...(tls === undefined ? {} : { tls: { cert: tls.cert, key: tls.key, ca: tls.ca } }),
  ...(capacity
    ? {
        body: JSON.stringify({ topic: 'connection pooling in Node.js', audience: 'backend engineers', keywords: ['undici'], length: 'long' }),
        simulatorArgs: ['--pace', 'real', '--pace-scale', String(paceScale)],
        // Node 24 in a 1 GiB container sizes the heap at about half of it (openvidu-meet#89
        // measured 259 MB for a 512 MB limit; nodejs/node#35573).
        nodeArgs: ['--max-old-space-size=512', ...extraNodeArgs],
        pinTo: { variant: '0', others: '1' },
        env: { MAX_CONCURRENT_REQUESTS: String(callers), ...extraEnv }
      }
    : { ...(extraNodeArgs.length > 0 ? { nodeArgs: extraNodeArgs } : {}), ...(values.env.length > 0 ? { env: extraEnv } : {}) })
}
const runs = Math.max(1, positive('runs', values.runs))
const name = values.name ?? (http2Cost ? `http2-cost${capacity ? `-${callers}` : ''}` : capacity ? `capacity-${callers}${tls === undefined ? '' : '-tls'}${overload === undefined ? '' : `-overload-${overload}`}` : values.compare ? 'compare' : values.soak ? 'soak' : values['telemetry-cost'] ? 'telemetry-cost' : values.chaos !== undefined ? `chaos-${values.chaos}` : 'bench')

const results: Array<{ label: string, result: ScenarioResult }> = []
for (let run = 1; run <= runs; run++) {
  const service = async () => results.push({ label: `service #${run}`, result: await runScenario({ ...base, variant: 'service' }) })
  if (values['telemetry-cost']) {
    const off = async () => results.push({ label: `telemetry off #${run}`, result: await runScenario({ ...base, variant: 'service', label: 'service-telemetry-off', env: { ...base.env, OTEL_SDK_DISABLED: 'true' } }) })
    // Every other pair starts with telemetry off, so neither side always runs first.
    if (run % 2 === 1) { await service(); await off() } else { await off(); await service() }
    continue
  }
  if (http2Cost) {
    const over = (http2: boolean) => async () => results.push({
      label: `${http2 ? 'HTTP/2' : 'HTTP/1.1'} #${run}`,
      result: await runScenario({ ...base, variant: 'service', label: http2 ? 'service-http2' : 'service-http1', env: { ...base.env, UPSTREAM_HTTP2: String(http2) } })
    })
    if (run % 2 === 1) { await over(true)(); await over(false)() } else { await over(false)(); await over(true)() }
    continue
  }
  await service()
  // The reference admits everyone: beside an overload it would measure nothing.
  if (capacity && overload === undefined) results.push({ label: `reference #${run}`, result: await runScenario({ ...base, variant: 'reference' }) })
  if (values.compare) results.push({ label: `reference #${run}`, result: await runScenario({ ...base, variant: 'reference' }) })
}
if (values.compare) {
  const amount = positive('leaky-requests', values['leaky-requests'])
  results.push({ label: 'leaky', result: await runScenario({ ...base, variant: 'leaky', amount }) })
}

const of = (variant: string) => results.filter(({ result }) => result.variant === variant).map(({ result }) => result)
const medians = (variant: string) => {
  const list = of(variant)
  return {
    requestsPerS: median(list.map((r) => r.requestsPerS)),
    cpuUsPerRequest: median(list.map((r) => r.cpuUsPerRequest)),
    p50: median(list.map((r) => r.latencyMs.p50)),
    p99: median(list.map((r) => r.latencyMs.p99))
  }
}

const row = (label: string, r: ScenarioResult) =>
  `| ${label} | ${r.requests} | ${r.requestsPerS} | ${r.cpuUsPerRequest} | ${r.latencyMs.p50} | ${r.latencyMs.p99} | ${r.non2xx + r.errors} | ` +
  `${r.upstream.peakSimulator} / ${r.upstream.maxSampledProc} | ${r.upstream.openAfterLoad} / ${r.upstream.openAfterShutdown} | ` +
  `${r.fds.idle} → ${r.fds.afterLoad} | ${r.rssMiB.first} → ${r.rssMiB.last} (max ${r.rssMiB.max}) | ${r.exitCode} |`

// A run with errors measured something other than the service under load: say so, loudly. Under
// chaos, non-2xx answers are the measurement; only transport errors and silence invalidate it.
const failed = results.filter(({ result }) => (base.chaos === undefined && !capacity ? result.non2xx : 0) + result.errors + result.timeouts > 0 || result.samples.length === 0 ||
  (base.chaos !== undefined && result.scrapeFailures > 0))
const lines = [
  `# ${name}`,
  ...(failed.length === 0 ? [] : ['', `**INVALID: ${failed.map(({ label }) => label).join(', ')} had errors or stopped reporting; the figures below do not describe a healthy run.**`]),
  '',
  `${new Date().toISOString()} · Node ${process.version} · ${base.connections} connections · ` +
    `${base.amount ?? `${base.durationS} s`} per run · upstream latency ${base.latencyMs} ms · pool ${base.pool} · runs ${runs}`,
  '',
  '| run | requests | req/s | CPU µs/request | p50 ms | p99 ms | errors | upstream peak (sim / proc) | upstream open after load / after shutdown | fds idle → after | RSS MiB first → last | exit |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...results.map(({ label, result }) => row(label, result))
]

if (values.compare) {
  const service = medians('service')
  const reference = medians('reference')
  const ratio = (a: number, b: number) => (b === 0 ? 0 : Math.round((a / b) * 100) / 100)
  lines.push('', `Medians of ${runs} run(s), service / reference: CPU per request ${service.cpuUsPerRequest} vs ${reference.cpuUsPerRequest} µs; throughput **${ratio(service.requestsPerS, reference.requestsPerS)}×** ` +
    `(target ≥ 0.85), p50 **${ratio(service.p50, reference.p50)}×**, p99 **${ratio(service.p99, reference.p99)}×** (target ≤ 1.25).`)
  const leaky = of('leaky')[0]!
  lines.push('', `The leaky variant, ${leaky.requests} requests: upstream connections open after the load ${leaky.upstream.openAfterLoad} ` +
    `(service: ${of('service')[0]!.upstream.openAfterLoad}), fds ${leaky.fds.idle} → ${leaky.fds.afterLoad}, RSS ${leaky.rssMiB.first} → ${leaky.rssMiB.max} MiB.`)
}

if (capacity) {
  const seconds = (ms: number) => (ms / 1000).toFixed(2)
  const started = rampS > 0 ? `Callers started in groups over ${rampS} s.` : 'Callers started all at once (--ramp 0).'
  lines.push('', `Pace scale ${paceScale}: critical path ${seconds(pathMs)} s (${seconds(pathMs / paceScale)} s real). ${started} Non-2xx must be 0; p99 / path ≤ 1.15.`, '',
    '| run | answers | non-2xx | p50 s | p99 s | p99 / path | event-loop delay p99, max of 1 s samples | longest GC pause · GC share of time | peak RSS MiB | RSS per caller KiB | peak upstream connections | fds idle → after | CPU ms / request |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const { label, result } of results) {
    const statuses = Object.entries(result.statuses).filter(([code]) => !code.startsWith('2')).map(([code, count]) => `${code}: ${count}`).join(', ') || '0'
    const eld = Math.max(0, ...result.samples.map((sample) => sample.eventLoopDelayP99Ms))
    const gcLongest = Math.max(0, ...result.samples.map((sample) => sample.gcLongestMs))
    const gcShare = result.samples.reduce((sum, sample) => sum + sample.gcMs, 0) / (10 * Math.max(1, result.samples.length))
    const perCaller = (result.rssMiB.max - result.rssMiB.first) * 1024 / callers
    lines.push(`| ${label} | ${result.requests} | ${statuses}${result.errors + result.timeouts > 0 ? `; ${result.errors} errors, ${result.timeouts} timeouts` : ''} | ${seconds(result.latencyMs.p50)} | ${seconds(result.latencyMs.p99)} | **${(result.latencyMs.p99 / pathMs).toFixed(2)}** | ${eld} ms | ${gcLongest} ms · ${gcShare.toFixed(1)} % | ${result.rssMiB.max} | ${perCaller.toFixed(0)} | ${result.upstream.peakSimulator} | ${result.fds.idle} → ${result.fds.afterLoad} | ${(result.cpuUsPerRequest / 1000).toFixed(1)} |`)
  }
}

if (overload !== undefined) {
  lines.push('', `Overload ${overload} ×: ${callers} admitted at a time (MAX_CONCURRENT_REQUESTS), ${callers * overload} callers, ` +
    'each asking at most once a second. The table above pools every answer; here the admitted and the refused apart.')
  lines.push('', '| run | 200: answers · p50 s · p99 s · p99 / path | 503: answers · p50 ms · p99 ms | other statuses | event-loop delay p99, max of 1 s samples | CPU ms / 200 |', '|---|---|---|---|---|---|')
  for (const { label, result } of results) {
    const ok = result.byStatus?.['200'] ?? { count: 0, p50: 0, p99: 0 }
    const shed = result.byStatus?.['503'] ?? { count: 0, p50: 0, p99: 0 }
    const others = Object.entries(result.byStatus ?? {}).filter(([code]) => code !== '200' && code !== '503').map(([code, { count }]) => `${code}: ${count}`).join(', ') || '0'
    const eld = Math.max(0, ...result.samples.map((sample) => sample.eventLoopDelayP99Ms))
    lines.push(`| ${label} | ${ok.count} · ${(ok.p50 / 1000).toFixed(2)} · ${(ok.p99 / 1000).toFixed(2)} · **${(ok.p99 / pathMs).toFixed(2)}** | ${shed.count} · ${shed.p50} · **${shed.p99}** | ${others}${result.errors + result.timeouts > 0 ? `; ${result.errors} errors, ${result.timeouts} timeouts` : ''} | ${eld} ms | ${(result.cpuUsPerRequest * result.requests / Math.max(1, ok.count) / 1000).toFixed(1)} |`)
  }
}

if (http2Cost) {
  const h2 = medians('service-http2')
  const h1 = medians('service-http1')
  lines.push('', '| run | calls over h2 / http/1.1 | most h2 streams on one connection | peak upstream connections | fds idle → after | peak RSS MiB | CPU µs / request | p99 ms |', '|---|---|---|---|---|---|---|---|')
  for (const { label, result } of results) {
    lines.push(`| ${label} | ${result.protocols.h2} / ${result.protocols['http/1.1']} | ${result.protocols.peakStreamsPerConnection} | ${result.upstream.peakSimulator} | ${result.fds.idle} → ${result.fds.afterLoad} | ${result.rssMiB.max} | ${result.cpuUsPerRequest} | ${result.latencyMs.p99} |`)
  }
  lines.push('', `Medians of ${runs} run(s), HTTP/2 / HTTP/1.1: CPU per request **${(h2.cpuUsPerRequest / h1.cpuUsPerRequest).toFixed(2)}×** ` +
    `(${h2.cpuUsPerRequest} vs ${h1.cpuUsPerRequest} µs), p99 **${(h2.p99 / h1.p99).toFixed(2)}×** (${h2.p99} vs ${h1.p99} ms), throughput ${(h2.requestsPerS / h1.requestsPerS).toFixed(2)}×.`)
}

if (values['telemetry-cost']) {
  const on = medians('service')
  const off = medians('service-telemetry-off')
  lines.push('', `Medians of ${runs} run(s), telemetry on / off: throughput **${(on.requestsPerS / off.requestsPerS).toFixed(2)}×** ` +
    `(${on.requestsPerS} vs ${off.requestsPerS} req/s; target ≥ 0.90), CPU per request **${(on.cpuUsPerRequest / off.cpuUsPerRequest).toFixed(2)}×** ` +
    `(${on.cpuUsPerRequest} vs ${off.cpuUsPerRequest} µs), p99 ${on.p99} vs ${off.p99} ms.`)
  // The spread of the pairs says how far one median can be trusted on a shared machine.
  const pairs = of('service').map((result, index) => result.requestsPerS / of('service-telemetry-off')[index]!.requestsPerS).sort((a, b) => a - b)
  lines.push('', `Throughput on / off, pair by pair: ${pairs.map((ratio) => ratio.toFixed(2)).join(', ')} (median ${median(pairs).toFixed(2)}).`)
}

if (base.chaos !== undefined) {
  lines.push('', '| run | answers | 200 | success | other statuses | upstream calls / first attempts | faults injected | breaker changes | p99 ms | RSS MiB first → last | fds idle → after |', '|---|---|---|---|---|---|---|---|---|---|---|')
  for (const { label, result } of results) {
    const chaos = result.chaos!
    const ok = result.statuses['200'] ?? 0
    const others = Object.entries(result.statuses).filter(([code]) => code !== '200').map(([code, count]) => `${code}: ${count}`).join(', ') || '—'
    const changes = Object.entries(chaos.breakerTransitions).map(([state, count]) => `${state}: ${count}`).join(', ') || 'none'
    lines.push(`| ${label} | ${result.requests} | ${ok} | **${(100 * ok / Math.max(1, result.requests)).toFixed(2)} %** | ${others} | ` +
      `**${(chaos.upstreamCalls / Math.max(1, chaos.firstAttempts)).toFixed(3)}** (${chaos.upstreamCalls} / ${chaos.firstAttempts}; ${chaos.retries} retries) | ` +
      `${chaos.faultsInjected} | ${changes} | ${result.latencyMs.p99} | ${result.rssMiB.first} → ${result.rssMiB.last} | ${result.fds.idle} → ${result.fds.afterLoad} |`)
  }
}

if (values.soak) {
  const samples = results[0]!.result.samples
  const minute2 = samples.find((s) => s.t >= 120) ?? samples[0]!
  const last = samples.at(-1)!
  const heaps = samples.filter((s) => s.t >= 120 && s.heapAfterGcMiB !== null).map((s) => s.heapAfterGcMiB!)
  const heapDrift = heaps.length < 2 ? undefined : (heaps.at(-1)! - heaps[0]!) / heaps[0]!
  lines.push('', `RSS at the end ${last.rssMiB} MiB vs ${minute2.rssMiB} MiB at minute 2: **${(last.rssMiB / minute2.rssMiB).toFixed(3)}×** (target ≤ 1.10). ` +
    (heapDrift === undefined
      ? '**No heap-after-GC samples were taken** (run shorter than 2.5 minutes, or the process stopped reporting).'
      : `Heap after a forced GC from minute 2 on: ${heaps.map((h) => h.toFixed(1)).join(', ')} MiB, drift **${(heapDrift * 100).toFixed(1)} %** (target within 5 %).`))
}

const directory = new URL('./reports/', import.meta.url)
mkdirSync(directory, { recursive: true })
writeFileSync(new URL(`${name}.json`, directory), JSON.stringify({ name, at: new Date().toISOString(), node: process.version, options: base, results }, null, 2))
writeFileSync(new URL(`${name}.md`, directory), lines.join('\n') + '\n')
writeFileSync(new URL(`${name}.svg`, directory), chart(results, `${name}: memory, upstream connections and p99 over time`))
console.log(lines.join('\n'))
console.log(`\nReports: bench/reports/${name}.{json,md,svg}`)
