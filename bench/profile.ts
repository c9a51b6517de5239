// npm run bench:profile [-- --duration 20 --connections 50 --rate REQ_PER_S --runs 1]: where the
// service's CPU goes, telemetry on and off. Starts the simulator and the service (the build, with
// the telemetry preload) as separate processes, the service under `node --cpu-prof`; loads it with
// autocannon; stops both by PID; then charges every profile sample taken during the load to the
// package whose code was running and prints CPU µs per request for each, and the telemetry
// packages' share by function.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startSimulatorProcess, startVariant } from './lib/processes.ts'
import { median } from './lib/sample.ts'
import { load } from './lib/scenario.ts'
import { attribute, TELEMETRY, type CpuProfile } from './lib/cpu-profile.ts'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    connections: { type: 'string', default: '50' },
    rate: { type: 'string' },
    runs: { type: 'string', default: '1' },
    pool: { type: 'string', default: '64' },
    // 200 µs rather than V8's 1 ms: five times the samples for the same load.
    interval: { type: 'string', default: '200' }
  }
})
const durationS = Number(values.duration)
const connections = Number(values.connections)
const runs = Number(values.runs)
const rate = values.rate === undefined ? undefined : Number(values.rate)
const pool = Number(values.pool)

async function profileOnce (telemetry: boolean) {
  const directory = mkdtempSync(join(tmpdir(), 'content-engine-profile-'))
  const simulator = await startSimulatorProcess(0, 60_000)
  try {
    // The service exactly as `npm run bench` starts it, under the profiler.
    const service = await startVariant('service', simulator.origin, pool, telemetry ? {} : { OTEL_SDK_DISABLED: 'true' },
      ['--cpu-prof', '--cpu-prof-interval', values.interval, '--cpu-prof-dir', directory])
    const url = `${service.origin}/generate`
    const shape = { connections, ...(rate === undefined ? {} : { rate }) }
    await load(url, { ...shape, durationS: 3 })
    const from = Number(process.hrtime.bigint() / 1000n)
    const result = await load(url, { ...shape, durationS })
    const to = Number(process.hrtime.bigint() / 1000n)
    // The profile is written when the process exits.
    await service.stop()
    const file = readdirSync(directory).find((name) => name.endsWith('.cpuprofile'))
    if (file === undefined) throw new Error('the service wrote no CPU profile')
    const profile = JSON.parse(readFileSync(join(directory, file), 'utf8')) as CpuProfile
    const errors = result.non2xx + result.errors + result.timeouts
    if (errors > 0) throw new Error(`${errors} failed requests: the profile would not describe a healthy service`)
    const { totals, functions } = attribute(profile, from, to)
    const per = (map: Map<string, number>) => new Map([...map].map(([key, us]) => [key, us / result.requests.total]))
    return { requestsPerS: result.requests.total / result.duration, perRequest: per(totals), perFunction: per(functions) }
  } finally {
    await simulator.stop()
    rmSync(directory, { recursive: true, force: true })
  }
}

const on: Array<Awaited<ReturnType<typeof profileOnce>>> = []
const off: typeof on = []
for (let run = 1; run <= runs; run++) {
  console.error(`[profile] run ${run}: telemetry on`)
  on.push(await profileOnce(true))
  console.error(`[profile] run ${run}: telemetry off`)
  off.push(await profileOnce(false))
}

const keys = new Set([...on, ...off].flatMap(({ perRequest }) => [...perRequest.keys()]))
const med = (list: typeof on, key: string) => median(list.map(({ perRequest }) => perRequest.get(key) ?? 0))
const rows = [...keys].map((key) => ({ key, on: med(on, key), off: med(off, key) }))
const telemetryRows = rows.filter(({ key }) => TELEMETRY.test(key)).sort((a, b) => b.on - a.on)
const otherRows = rows.filter(({ key }) => !TELEMETRY.test(key)).sort((a, b) => b.on - a.on)
const sum = (list: typeof rows, side: 'on' | 'off') => list.reduce((total, row) => total + row[side], 0)
const fixed = (value: number) => value.toFixed(1)
const functionNames = new Set(on.flatMap(({ perFunction }) => [...perFunction.keys()]))
const functionRows = [...functionNames]
  .map((key) => ({ key, on: median(on.map(({ perFunction }) => perFunction.get(key) ?? 0)) }))
  .sort((a, b) => b.on - a.on)
const busyOn = sum(rows, 'on')
const busyOff = sum(rows, 'off')

const lines = [
  '# profile',
  '',
  `${new Date().toISOString()} · Node ${process.version} · ${connections} connections · ${rate === undefined ? 'as fast as it answers' : `${rate} req/s`} · ` +
    `${durationS} s per run · runs ${runs} · sampling every ${values.interval} µs`,
  '',
  `Main-thread CPU per request, medians of ${runs} run(s), from \`node --cpu-prof\` during the load (the profiler itself slows the service; compare rows, not absolute figures with \`npm run bench\`).`,
  `Throughput under the profiler: ${fixed(median(on.map((r) => r.requestsPerS)))} req/s with telemetry, ${fixed(median(off.map((r) => r.requestsPerS)))} without.`,
  '',
  '| where | telemetry on, µs/request | telemetry off, µs/request |',
  '|---|---|---|',
  ...telemetryRows.map(({ key, on, off }) => `| ${key} | ${fixed(on)} | ${fixed(off)} |`),
  `| **all telemetry packages** | **${fixed(sum(telemetryRows, 'on'))}** | **${fixed(sum(telemetryRows, 'off'))}** |`,
  ...otherRows.slice(0, 12).map(({ key, on, off }) => `| ${key} | ${fixed(on)} | ${fixed(off)} |`),
  `| everything else | ${fixed(sum(otherRows.slice(12), 'on'))} | ${fixed(sum(otherRows.slice(12), 'off'))} |`,
  `| **busy in all** | **${fixed(busyOn)}** | **${fixed(busyOff)}** (on / off **${(busyOn / busyOff).toFixed(2)}×**) |`,
  '',
  'The telemetry packages by function, telemetry on (the 15 largest; native work is charged to its JavaScript caller):',
  '',
  '| function | µs/request |',
  '|---|---|',
  ...functionRows.slice(0, 15).map(({ key, on }) => `| ${key} | ${fixed(on)} |`)
]
const reports = new URL('./reports/', import.meta.url)
mkdirSync(reports, { recursive: true })
writeFileSync(new URL('profile.md', reports), lines.join('\n') + '\n')
console.log(lines.join('\n'))
console.log('\nReport: bench/reports/profile.md')
