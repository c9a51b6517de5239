// npm run bench:idempotency [-- --requests 1000 --callers 10 --rounds 3]
// What Idempotency-Keys and Redis-backed limits add to a JSON request, against a local redis-server
// and the instant simulator (so the added milliseconds are not hidden under upstream time). Three
// services, the same build, each authenticating one API key (so per-caller limits run in all):
// - memory: no REDIS_URL, no key: per-caller limits in this instance's memory;
// - redis: REDIS_URL, a new Idempotency-Key per request: rate window, concurrency slot, claim,
//   lease renewal and the stored result, all in Redis;
// - replay: REDIS_URL, every request repeating a completed key.
// Each round sends --requests per service from --callers callers, services taking turns, and the
// figures are the medians over rounds. Every process (simulator, redis-server, services) is stopped
// by PID; only 127.0.0.1 is used; each load is bounded by its request count.
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { freePort, liveEnv } from '../test/spawn.ts'
import { launchRedis } from '../test/redis.ts'
import { startProcess, startSimulatorProcess, pin } from './lib/processes.ts'
import { median, percentile, processCpuMs } from './lib/sample.ts'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    callers: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' }
  }
})
const requests = Number(values.requests)
const callers = Number(values.callers)
const rounds = Number(values.rounds)
const API_KEY = 'bench-key'
const BRIEF = JSON.stringify({ topic: 'what an idempotency key costs', length: 'short' })

const redis = await launchRedis()
process.once('exit', () => { redis.stop().catch(() => {}) })
const simulator = await startSimulatorProcess(0, 60_000)

// Each service on core 0, the simulator, redis-server and this driver elsewhere.
async function start (name: string, withRedis: boolean) {
  const port = await freePort()
  const service = await startProcess(['--import', './dist/telemetry.js', 'dist/server.js'], {
    PORT: String(port),
    METRICS_PORT: String(await freePort()),
    ...liveEnv(simulator.origin),
    AUTH_MODE: 'api-key',
    AUTH_API_KEYS: `bench:${createHash('sha256').update(API_KEY).digest('hex')}`,
    RATE_LIMIT_PER_MINUTE: '10000000',
    RATE_LIMIT_CONCURRENT: String(callers),
    MAX_CONCURRENT_REQUESTS: '1000',
    ...(withRedis ? { REDIS_URL: redis.url } : {})
  }, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  pin(service.pid, '0')
  return { name, ...service }
}

const services = [await start('memory', false), await start('redis', true), await start('replay', true)]
pin(simulator.pid, '1')
const dispatcher = new Agent({ connections: callers })
let sequence = 0

async function round (service: (typeof services)[number]) {
  const times: number[] = []
  const cpuBefore = processCpuMs(service.pid)
  const statuses = new Map<number, number>()
  let next = 0
  await Promise.all(Array.from({ length: callers }, async () => {
    while (next < requests) {
      next++
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-api-key': API_KEY }
      if (service.name === 'redis') headers['idempotency-key'] = `bench-${process.pid}-${sequence++}`
      if (service.name === 'replay') headers['idempotency-key'] = 'bench-replayed'
      const started = performance.now()
      const response = await request(`${service.origin}/generate`, { dispatcher, method: 'POST', headers, body: BRIEF })
      await response.body.dump()
      times.push(performance.now() - started)
      statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
    }
  }))
  const cpuPerRequest = (processCpuMs(service.pid) - cpuBefore) / requests
  return { p50: percentile(times, 50), p99: percentile(times, 99), cpuPerRequest, statuses: Object.fromEntries(statuses) }
}

try {
  // Warm-up, and the replayed key's first (stored) run.
  for (const service of services) await round(service)
  const results: Record<string, Array<Awaited<ReturnType<typeof round>>>> = { memory: [], redis: [], replay: [] }
  for (let r = 0; r < rounds; r++) {
    for (const service of services) results[service.name]!.push(await round(service))
  }
  const summary = Object.fromEntries(Object.entries(results).map(([name, runs]) => [name, {
    p50Ms: Number(median(runs.map((run) => run.p50)).toFixed(2)),
    p99Ms: Number(median(runs.map((run) => run.p99)).toFixed(2)),
    serviceCpuMsPerRequest: Number(median(runs.map((run) => run.cpuPerRequest)).toFixed(3)),
    statuses: runs.map((run) => run.statuses)
  }]))
  const added = Number((summary.redis!.p50Ms - summary.memory!.p50Ms).toFixed(2))
  const report = { requests, callers, rounds, summary, addedP50Ms: added, target: 'added p50 <= 2 ms' }
  console.log(JSON.stringify(report, null, 2))
  mkdirSync('bench/reports', { recursive: true })
  writeFileSync(`bench/reports/idempotency-${callers}.json`, `${JSON.stringify(report, null, 2)}\n`)
} finally {
  await dispatcher.close()
  for (const service of services) await service.stop()
  await simulator.stop()
  await redis.stop()
}
