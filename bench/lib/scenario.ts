import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import { pin, startSimulatorProcess, startVariant, type Variant } from './processes.ts'
import { percentile, procConnections, processCpuMs, scrapeCounters, simulatorStats } from './sample.ts'

export interface ScenarioOptions {
  variant: Variant
  /** Names the result when one variant runs in more than one configuration. */
  label?: string
  durationS: number
  /** Bound the load by request count instead (the leaky variant, whose sockets pile up). */
  amount?: number
  connections: number
  latencyMs: number
  pool: number
  /** A fixed overall request rate instead of as fast as the service answers. */
  rate?: number
  gcEveryMs?: number
  /** Probability of a random fault on every upstream call (the simulator's --fault-rate). */
  chaos?: number
  env?: Record<string, string>
  /** The brief every caller sends (default: a medium post). */
  body?: string
  /** More simulator arguments (a provider's pace: --pace real --pace-scale 0.25). */
  simulatorArgs?: string[]
  /** Node options for the variant (its heap size). */
  nodeArgs?: string[]
  /** Serve the upstreams over HTTPS (HTTP/2 or HTTP/1.1 by ALPN) with this certificate; the service trusts `ca`. */
  tls?: { cert: string, key: string, ca: string }
  /**
   * Spread the callers' first requests evenly over this many seconds (in groups of callers), so
   * that they do not move in lockstep: closed-loop callers that all start at once stay together,
   * and every post's plan, sections and answer then land in the same instant.
   */
  rampS?: number
  /**
   * Each caller sends at most this many requests a second (autocannon's connectionRate): a caller
   * refused with Retry-After: 1 asks again within the second, as a well-behaved client does.
   */
  connectionRate?: number
  /** CPUs for the variant (taskset's list); the simulator and this driver get the others. */
  pinTo?: { variant: string, others: string }
  log?: (line: string) => void
}

export interface Sample {
  t: number
  rssMiB: number
  heapUsedMiB: number
  heapAfterGcMiB: number | null
  externalMiB: number
  arrayBuffersMiB: number
  fds: number
  eventLoopDelayP99Ms: number
  eventLoopUtilization: number
  /** The longest garbage-collection pause in this second, and all of them together. */
  gcLongestMs: number
  gcMs: number
  upstreamOpenSimulator: number
  upstreamOpenProc: number
  requestsPerS: number
  p99Ms: number
}

const BRIEF = JSON.stringify({ topic: 'connection pooling in Node.js', audience: 'backend engineers', keywords: ['undici'] })
const SHORT_BRIEF = JSON.stringify({ topic: 'connection pooling in Node.js', audience: 'backend engineers', keywords: ['undici'], length: 'short' })
// Under random faults: the issue's 3 s deadline, and 500 ms per attempt so a hung call is retried.
const CHAOS_ENV = { REQUEST_TIMEOUT_MS: '3000', UPSTREAM_HEADERS_TIMEOUT_MS: '500', UPSTREAM_BODY_TIMEOUT_MS: '500' }
const PROVIDER_ENDPOINTS = ['llm', 'image', 'sentiment', 'entities']
const MiB = 1024 * 1024
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits
// The service closes idle upstream sockets after 4 s; wait past that before counting descriptors.
const SETTLE_MS = 5_500

type LoadOptions = Pick<ScenarioOptions, 'connections' | 'durationS' | 'amount' | 'rate' | 'chaos' | 'body' | 'rampS' | 'connectionRate'>

/** What every load reports: autocannon's result, or the sum of the ramp's groups. */
export interface LoadResult {
  requests: { total: number }
  duration: number
  latency: { p50: number, p90: number, p99: number, max: number }
  non2xx: number
  statusCodeStats?: Record<string, { count?: number | undefined }>
  errors: number
  timeouts: number
  /** Response times by status: what the admitted waited, and the refused. */
  byStatus?: Record<string, { count: number, p50: number, p99: number }>
}

// Groups a ramp starts its callers in: enough to spread them, few enough that each is one autocannon.
const RAMP_GROUPS = 20

/**
 * POST /generate with autocannon, bounded by `durationS` (or `amount`), at `rate` if given. With
 * `rampS`, the callers start in groups spread over that time, each group running for `durationS`,
 * and the percentiles come from every response's time.
 */
export async function load (url: string, options: LoadOptions, onResponse?: (ms: number, status: number) => void): Promise<LoadResult> {
  const byStatus: Record<string, number[]> = {}
  const record = (ms: number, status: number) => {
    const sameStatus = byStatus[status] ??= []
    sameStatus.push(ms)
    onResponse?.(ms, status)
  }
  const statusTimes = () => Object.fromEntries(Object.entries(byStatus).map(([status, list]) => [status, { count: list.length, p50: round(percentile(list, 50)), p99: round(percentile(list, 99)) }]))
  const groups = Math.min(RAMP_GROUPS, options.connections)
  if (options.rampS === undefined || options.rampS <= 0 || groups < 2 || options.amount !== undefined || options.rate !== undefined) {
    return { ...await loadOnce(url, options, record), byStatus: statusTimes() }
  }
  const started = performance.now()
  const times: number[] = []
  const results = await Promise.all(Array.from({ length: groups }, async (_, group) => {
    await sleep((group * options.rampS! * 1000) / groups)
    // The callers split as evenly as they go: the first groups take one more.
    const connections = Math.floor(options.connections / groups) + (group < options.connections % groups ? 1 : 0)
    return loadOnce(url, { ...options, connections }, (ms, status) => {
      times.push(ms)
      record(ms, status)
    })
  }))
  const sum = (pick: (result: autocannon.Result) => number) => results.reduce((total, result) => total + pick(result), 0)
  const statusCodeStats: Record<string, { count: number }> = {}
  for (const result of results) {
    for (const [code, { count = 0 }] of Object.entries(result.statusCodeStats ?? {})) statusCodeStats[code] = { count: (statusCodeStats[code]?.count ?? 0) + count }
  }
  return {
    requests: { total: sum((result) => result.requests.total) },
    duration: (performance.now() - started) / 1000,
    latency: { p50: round(percentile(times, 50)), p90: round(percentile(times, 90)), p99: round(percentile(times, 99)), max: round(Math.max(0, ...times)) },
    non2xx: sum((result) => result.non2xx),
    statusCodeStats,
    errors: sum((result) => result.errors),
    timeouts: sum((result) => result.timeouts),
    byStatus: statusTimes()
  }
}

function loadOnce (url: string, options: LoadOptions, onResponse?: (ms: number, status: number) => void) {
  return new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: options.body ?? (options.chaos === undefined ? BRIEF : SHORT_BRIEF),
      connections: options.connections,
      duration: options.durationS,
      ...(options.amount === undefined ? {} : { amount: options.amount }),
      ...(options.rate === undefined ? {} : { overallRate: options.rate }),
      ...(options.connectionRate === undefined ? {} : { connectionRate: options.connectionRate }),
      timeout: 30
    }, (error, result) => error ? reject(error) : resolve(result))
    if (onResponse !== undefined) instance.on('response', (_client, status, _bytes, ms) => onResponse(ms, status))
  })
}

/** Starts the simulator and one variant as separate processes, loads it, samples it every second. */
export async function runScenario (options: ScenarioOptions) {
  const log = options.log ?? (() => {})
  // Idle sockets live 60 s on the simulator, as on real providers' front ends: only the client
  // can release them, which is what tells a pool from a leak.
  const chaosArgs = options.chaos === undefined ? [] : ['--fault-rate', String(options.chaos), '--slow-ms', '200']
  const tlsArgs = options.tls === undefined ? [] : ['--tls-cert', options.tls.cert, '--tls-key', options.tls.key]
  const simulator = await startSimulatorProcess(options.latencyMs, 60_000, [...chaosArgs, ...tlsArgs, ...options.simulatorArgs ?? []])
  const simulatorPort = Number(new URL(simulator.origin).port)
  const target = await startVariant(options.variant, simulator.origin, options.pool, {
    ...(options.gcEveryMs === undefined ? {} : { BENCH_GC_INTERVAL_MS: String(options.gcEveryMs) }),
    ...(options.chaos === undefined ? {} : CHAOS_ENV),
    ...(options.tls === undefined ? {} : { UPSTREAM_TLS_CA_FILE: options.tls.ca }),
    ...options.env
  }, options.nodeArgs)
  if (options.pinTo !== undefined) {
    const failed = [[target.pid, options.pinTo.variant, options.variant], [simulator.pid, options.pinTo.others, 'simulator'], [process.pid, options.pinTo.others, 'driver']]
      .filter(([pid, cpus]) => !pin(pid as number, cpus as string)).map(([, , name]) => name)
    log(failed.length === 0 ? `${options.variant} on CPU ${options.pinTo.variant}; simulator and driver on ${options.pinTo.others}` : `could not pin ${failed.join(', ')}: figures share the CPUs`)
  }
  // What the upstreams saw and what the service says it sent, before and after the load.
  const upstreamCounts = async () => {
    const stats = await simulatorStats(simulator.origin)
    // With OTEL_SDK_DISABLED (the telemetry-off runs) nothing serves the metrics port.
    const metrics = options.env?.OTEL_SDK_DISABLED === 'true' ? undefined : target.metricsUrl
    return {
      sent: PROVIDER_ENDPOINTS.reduce((sum, endpoint) => sum + (stats.requests[endpoint] ?? 0), 0),
      faults: stats.chaosFaults,
      attempts: await scrape(metrics, 'content_engine_upstream_attempts_total', 'content_engine_attempt'),
      breaker: await scrape(metrics, 'content_engine_upstream_breaker_transitions_total', 'content_engine_breaker_state')
    }
  }
  // Only the chaos figures come from the service's metrics: a scrape that fails is logged and
  // counted (a chaos report with one is invalid) rather than ending every other run's figures.
  let scrapeFailures = 0
  const scrape = async (url: string | undefined, name: string, label: string) => {
    if (url === undefined) return {}
    try {
      return await scrapeCounters(url, name, label)
    } catch (error) {
      scrapeFailures++
      log(`${options.variant}: reading ${name} from ${url} failed: ${(error as Error).message}`)
      return {}
    }
  }
  try {
    const url = `${target.origin}/generate`
    if (options.amount === undefined) {
      log(`${options.variant}: warm-up 3 s`)
      await load(url, { ...options, durationS: 3 })
      await sleep(SETTLE_MS)
    } else {
      await sleep(1_500)
    }
    const idleFds = target.probes.at(-1)?.fds ?? 0

    log(`${options.variant}: load ${options.amount === undefined ? `${options.durationS} s` : `${options.amount} requests`} at ${options.connections} connections`)
    const countsBefore = await upstreamCounts()
    const samples: Sample[] = []
    let second: number[] = []
    const started = performance.now()
    const sampler = setInterval(async () => {
      const probe = target.probes.at(-1) ?? {}
      const latencies = second
      second = []
      const stats = await simulatorStats(simulator.origin).catch(() => undefined)
      samples.push({
        t: round((performance.now() - started) / 1000, 0),
        rssMiB: round((probe.rss ?? 0) / MiB),
        heapUsedMiB: round((probe.heapUsed ?? 0) / MiB),
        heapAfterGcMiB: probe.heapAfterGc === undefined ? null : round(probe.heapAfterGc / MiB, 2),
        externalMiB: round((probe.external ?? 0) / MiB),
        arrayBuffersMiB: round((probe.arrayBuffers ?? 0) / MiB),
        fds: probe.fds ?? 0,
        eventLoopDelayP99Ms: round(probe.eventLoopDelayP99Ms ?? 0),
        eventLoopUtilization: round(probe.eventLoopUtilization ?? 0, 2),
        gcLongestMs: round(probe.gcLongestMs ?? 0),
        gcMs: round(probe.gcMs ?? 0),
        upstreamOpenSimulator: stats?.connections.open ?? -1,
        upstreamOpenProc: procConnections(target.pid, simulatorPort),
        requestsPerS: latencies.length,
        p99Ms: round(percentile(latencies, 99))
      })
    }, 1_000)
    let result: LoadResult
    const cpuBefore = processCpuMs(target.pid)
    try {
      result = await load(url, options, (ms) => second.push(ms))
    } finally {
      clearInterval(sampler)
    }
    // CPU per request is steadier than throughput on a shared 2-core machine: it does not depend
    // on how much CPU the driver and the simulator happened to leave the service.
    const cpuMsUsed = processCpuMs(target.pid) - cpuBefore
    const countsAfter = await upstreamCounts()
    const delta = (after: Record<string, number>, before: Record<string, number>) =>
      Object.fromEntries(Object.entries(after).map(([key, value]) => [key, value - (before[key] ?? 0)]))
    const attempts = delta(countsAfter.attempts, countsBefore.attempts)

    await sleep(SETTLE_MS)
    const afterFds = target.probes.at(-1)?.fds ?? 0
    const afterUpstream = procConnections(target.pid, simulatorPort)
    const peakBefore = (await simulatorStats(simulator.origin)).connections.peak
    const exitCode = await target.stop()
    await sleep(200)
    const afterShutdown = await simulatorStats(simulator.origin)

    return {
      variant: options.label ?? options.variant,
      options: { durationS: options.durationS, amount: options.amount, connections: options.connections, latencyMs: options.latencyMs, pool: options.pool },
      protocols: { ...afterShutdown.protocols, peakStreamsPerConnection: afterShutdown.peakStreamsPerConnection },
      requests: result.requests.total,
      requestsPerS: round(result.requests.total / result.duration),
      cpuUsPerRequest: Math.round((cpuMsUsed * 1000) / Math.max(1, result.requests.total)),
      latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
      byStatus: result.byStatus,
      non2xx: result.non2xx,
      statuses: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count])),
      chaos: options.chaos === undefined
        ? undefined
        : {
            rate: options.chaos,
            faultsInjected: countsAfter.faults - countsBefore.faults,
            upstreamCalls: countsAfter.sent - countsBefore.sent,
            firstAttempts: attempts.first ?? 0,
            retries: attempts.retry ?? 0,
            breakerTransitions: delta(countsAfter.breaker, countsBefore.breaker)
          },
      errors: result.errors,
      timeouts: result.timeouts,
      scrapeFailures,
      upstream: {
        peakSimulator: peakBefore,
        maxSampledProc: Math.max(0, ...samples.map((s) => s.upstreamOpenProc)),
        openAfterLoad: afterUpstream,
        openAfterShutdown: afterShutdown.connections.open
      },
      fds: { idle: idleFds, afterLoad: afterFds },
      rssMiB: { first: samples[0]?.rssMiB ?? 0, last: samples.at(-1)?.rssMiB ?? 0, max: Math.max(0, ...samples.map((s) => s.rssMiB)) },
      exitCode,
      samples
    }
  } finally {
    await target.stop()
    await simulator.stop()
  }
}

export type ScenarioResult = Awaited<ReturnType<typeof runScenario>>
