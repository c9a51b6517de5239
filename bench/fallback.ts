// npm run bench:fallback [-- --pace-scale 0.05 --callers 20 --rounds 25]
// What a primary LLM outage costs callers once its breaker is open. Two simulators at a provider's
// pace (0.5 s to the first token, 80 tokens/s, 15 s per image, 150 ms per Natural Language call,
// every figure times --pace-scale): the primary, whose LLM answers every call 503, and the
// fallback at Vertex AI's OpenAI-compatible path. The service runs twice against them, the same
// load each time:
//   fallback-only  LLM_BASE_URL is the fallback: the run an outage is compared with;
//   primary-down   LLM_BASE_URL is the failing primary, LLM_FALLBACK_BASE_URL the fallback. Its
//                  breaker opens within the first requests; every BREAKER_OPEN_MS it lets probes
//                  through, which meet the 503 and fall back, and those are in the figures too.
// Each run starts with one round that is not counted: in primary-down it opens the breaker, and the
// figures are those of the outage as it goes on, probes included. Images and Natural Language come from the primary simulator in both runs. Latencies are converted
// back to real time (divided by the scale). What the outage adds is not paced: a breaker check, a
// probe's 503 and its backoff take the same milliseconds at any scale. So the added figures are the
// measured differences, not divided by the scale; dividing would blow 2 ms up to 40. Processes are stopped by PID; only 127.0.0.1 is
// used; each load is bounded by its request count.
import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { freePort, liveEnv } from '../test/spawn.ts'
import { fromCallers } from './lib/callers.ts'
import { startProcess, type Started } from './lib/processes.ts'
import { percentile, scrapeCounters, simulatorStats } from './lib/sample.ts'

const { values } = parseArgs({
  options: {
    'pace-scale': { type: 'string', default: '0.05' },
    callers: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '25' },
    name: { type: 'string', default: 'fallback' }
  }
})
const scale = Number(values['pace-scale'])
const callers = Number(values.callers)
const rounds = Number(values.rounds)
const VERTEX_PATH = '/v1/projects/bench/locations/europe-west1/endpoints/openapi'
const FALLBACK_MODEL = 'google/gemini-2.5-flash'

interface Answer { status: number, wallMs: number, code?: string, textMs?: number, totalMs?: number, fallbackUsed: boolean }

const simulatorArgs = (extra: string[]) => ['src/simulator/main.ts', '--port', '0', '--pace', 'real', '--pace-scale', String(scale), '--keep-alive-ms', '60000', ...extra]
const ORIGIN = /"origin":"(http:\/\/127\.0\.0\.1:\d+)"/

async function serve (env: Record<string, string>) {
  const port = await freePort()
  const metricsPort = await freePort()
  const service = await startProcess(['--import', './dist/telemetry.js', 'dist/server.js'], {
    PORT: String(port), METRICS_PORT: String(metricsPort), MAX_CONCURRENT_REQUESTS: '1000', ...env
  }, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  return { service, metrics: `http://127.0.0.1:${metricsPort}/metrics` }
}

function drive (service: Started, rounds: number) {
  return fromCallers(service.origin, { callers, rounds, brief: (caller) => ({ topic: `fallback bench, caller ${caller}`, length: 'short' }) }, (status, json, wallMs): Answer => status === 200
    ? {
        status,
        wallMs,
        // The text path, which the LLM's provider decides; the image runs beside it.
        textMs: json.timings.planMs + json.timings.sectionsMs,
        totalMs: json.timings.totalMs,
        fallbackUsed: json.warnings.some((warning: { code: string }) => warning.code === 'fallback_used')
      }
    : { status, wallMs, code: json?.error?.code, fallbackUsed: false })
}

function summarise (answers: Answer[]) {
  const statuses: Record<string, number> = {}
  for (const answer of answers) statuses[answer.code ?? answer.status] = (statuses[answer.code ?? answer.status] ?? 0) + 1
  const measured = (values: Array<number | undefined>, p: number) => percentile(values.filter((value): value is number => value !== undefined), p)
  const figures = (values: Array<number | undefined>) => ({ p50: measured(values, 50), p99: measured(values, 99) })
  return {
    statuses,
    fallbackUsed: answers.filter((answer) => answer.fallbackUsed).length,
    textMs: figures(answers.map((a) => a.textMs)),
    totalMs: figures(answers.map((a) => a.totalMs)),
    wallMs: figures(answers.map((a) => a.wallMs))
  }
}

const primary = await startProcess(simulatorArgs(['--fault', 'llm:status=503']), {}, ORIGIN)
const fallback = await startProcess(simulatorArgs([]), {}, ORIGIN)
const results: Record<string, ReturnType<typeof summarise> & { primaryLlmCalls: number, fallbackLlmCalls: number, breaker: Record<string, number> }> = {}
try {
  const base = liveEnv(primary.origin)
  const runs = {
    'fallback-only': { ...base, LLM_BASE_URL: `${fallback.origin}${VERTEX_PATH}`, LLM_MODEL: FALLBACK_MODEL },
    'primary-down': { ...base, LLM_FALLBACK_BASE_URL: `${fallback.origin}${VERTEX_PATH}`, LLM_FALLBACK_MODEL: FALLBACK_MODEL, LLM_FALLBACK_API_KEY: 'fallback-key' }
  }
  for (const [label, env] of Object.entries(runs)) {
    console.error(`[fallback] ${label}: pace scale ${scale}, ${callers} callers × ${rounds} short posts`)
    const before = { primary: await simulatorStats(primary.origin), fallback: await simulatorStats(fallback.origin) }
    const { service, metrics } = await serve(env)
    try {
      // One round first, not counted: it is what opens the primary's breaker in primary-down.
      const warmUp = await drive(service, 1)
      const opened = await scrapeCounters(metrics, 'content_engine_upstream_breaker_transitions_total', 'content_engine_breaker_state')
      if (label === 'primary-down' && (opened.open ?? 0) === 0) throw new Error(`the primary's breaker did not open in the warm-up round: ${JSON.stringify(summarise(warmUp).statuses)}`)
      const answers = await drive(service, rounds)
      const after = { primary: await simulatorStats(primary.origin), fallback: await simulatorStats(fallback.origin) }
      results[label] = {
        ...summarise(answers),
        primaryLlmCalls: (after.primary.requests.llm ?? 0) - (before.primary.requests.llm ?? 0),
        fallbackLlmCalls: (after.fallback.requests.llm ?? 0) - (before.fallback.requests.llm ?? 0),
        breaker: await scrapeCounters(metrics, 'content_engine_upstream_breaker_transitions_total', 'content_engine_breaker_state')
      }
    } finally {
      await service.stop()
    }
  }
} finally {
  await primary.stop()
  await fallback.stop()
}

const only = results['fallback-only']!
const down = results['primary-down']!
const added = (pick: (r: typeof only) => { p50: number, p99: number }) => ({ p50: round(pick(down).p50 - pick(only).p50), p99: round(pick(down).p99 - pick(only).p99) })
const round = (ms: number) => Math.round(ms * 10) / 10
const real = (ms: number) => (ms / scale / 1000).toFixed(2)
const pair = ({ p50, p99 }: { p50: number, p99: number }) => `${real(p50)} / ${real(p99)}`
const report = { scale, callers, rounds, results, added: { textMs: added((r) => r.textMs), totalMs: added((r) => r.totalMs), wallMs: added((r) => r.wallMs) } }
const lines = [
  `# ${values.name}`, '',
  `${new Date().toISOString()} · Node ${process.version} · pace scale ${scale} · ${callers} callers × ${rounds} short posts per run`, '',
  '| run | answers | fallback_used | LLM calls: primary / fallback | breaker opened | text p50 / p99, real s | total p50 / p99, real s | caller p50 / p99, real s |',
  '|---|---|---|---|---|---|---|---|',
  ...Object.entries(results).map(([label, r]) => `| ${label} | ${JSON.stringify(r.statuses)} | ${r.fallbackUsed} | ${r.primaryLlmCalls} / ${r.fallbackLlmCalls} | ${r.breaker.open ?? 0}× | ${pair(r.textMs)} | ${pair(r.totalMs)} | ${pair(r.wallMs)} |`),
  '',
  `added by the outage, measured ms (not scaled), p99: text **${report.added.textMs.p99} ms**, total ${report.added.totalMs.p99} ms, caller ${report.added.wallMs.p99} ms (p50: ${report.added.textMs.p50}, ${report.added.totalMs.p50}, ${report.added.wallMs.p50})`
]
mkdirSync(new URL('./reports/', import.meta.url), { recursive: true })
writeFileSync(new URL(`./reports/${values.name}.json`, import.meta.url), JSON.stringify(report, null, 2))
writeFileSync(new URL(`./reports/${values.name}.md`, import.meta.url), lines.join('\n') + '\n')
console.log(lines.join('\n'))
