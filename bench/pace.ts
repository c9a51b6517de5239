// npm run bench:pace [-- --pace-scale 0.1 --runs 3 --callers 10 --rounds 2 --tokens-per-second 80]
// The service at a provider's pace: the simulator writes 0.5 s to the first token then 80 tokens/s,
// takes 15 s per image and 150 ms per Natural Language call, every figure times --pace-scale. Each
// length is sent by --callers callers, --rounds requests each; every figure is the median over the
// runs of each run's p50, converted back to real time (divided by the scale). Processes are stopped
// by PID; only 127.0.0.1 is used; each load is bounded by its request count.
import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { freePort, liveEnv } from '../test/spawn.ts'
import { LENGTHS } from '../src/generation/prompts.ts'
import { writePlan } from '../src/simulator/content.ts'
import { fromCallers } from './lib/callers.ts'
import { startProcess } from './lib/processes.ts'
import { median, percentile } from './lib/sample.ts'

const { values } = parseArgs({
  options: {
    'pace-scale': { type: 'string', default: '0.1' },
    'tokens-per-second': { type: 'string', default: '80' },
    runs: { type: 'string', default: '3' },
    callers: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    lengths: { type: 'string', default: 'short,medium,long' },
    name: { type: 'string' }
  }
})
const scale = Number(values['pace-scale'])
const tokensPerSecond = Number(values['tokens-per-second'])
const runs = Number(values.runs)
const callers = Number(values.callers)
const rounds = Number(values.rounds)
const lengths = values.lengths.split(',') as Array<'short' | 'medium' | 'long'>
const name = values.name ?? `pace-${scale}-${tokensPerSecond}tps`
const WORDS = { short: 600, medium: 1_200, long: 2_000 }

interface Answer { status: number, wallMs: number, post?: { body: string, timings: Record<string, number | null>, warnings: unknown[] }, code?: string }

async function oneRun () {
  const simulator = await startProcess(['src/simulator/main.ts', '--port', '0', '--pace', 'real', '--pace-scale', String(scale), '--tokens-per-second', String(tokensPerSecond), '--keep-alive-ms', '60000'], {}, /"origin":"(http:\/\/127\.0\.0\.1:\d+)"/)
  const port = await freePort()
  const service = await startProcess(['--import', './dist/telemetry.js', 'dist/server.js'], {
    PORT: String(port), METRICS_PORT: String(await freePort()), ...liveEnv(simulator.origin), MAX_CONCURRENT_REQUESTS: '1000'
  }, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  try {
    const byLength: Record<string, Answer[]> = {}
    for (const length of lengths) {
      byLength[length] = await fromCallers(service.origin, { callers, rounds, brief: (caller) => ({ topic: `provider pace, caller ${caller}`, length }) },
        (status, json, wallMs): Answer => ({ status, wallMs, ...(status === 200 ? { post: json } : { code: json?.error?.code }) }))
    }
    return byLength
  } finally {
    await service.stop()
    await simulator.stop()
  }
}

const perRun = []
for (let run = 1; run <= runs; run++) {
  console.error(`[pace] run ${run} of ${runs}: scale ${scale}, ${tokensPerSecond} tokens/s, ${callers} callers × ${rounds}`)
  perRun.push(await oneRun())
}

const real = (ms: number) => Math.round(ms / scale) / 1000
const p50 = (answers: Answer[], pick: (answer: Answer) => number | null | undefined) => percentile(answers.map(pick).filter((value): value is number => typeof value === 'number'), 50)
// The critical path the pace implies, in real seconds: the image, beside plan + the longest
// section + Natural Language. The plan's tokens are those of the simulator's own plan for such a
// brief (it is deterministic); a section's are its share of the body's characters / 4.
const ideal = (length: keyof typeof WORDS, answers: Answer[]) => {
  const { title, metaDescription, imageAlt, sections } = writePlan({ topic: 'provider pace, caller 0', tone: 'informative', keywords: [], ...LENGTHS[length] })
  const planTokens = JSON.stringify({ title, metaDescription, imageAlt, sections }).length / 4
  const sectionTokens = Math.max(...answers.filter((a) => a.post).map((a) => a.post!.body.length / 4 / (a.post!.body.match(/^## /gm)?.length ?? 1)))
  const text = 0.5 + planTokens / tokensPerSecond + 0.5 + sectionTokens / tokensPerSecond + 0.15
  return { text: +text.toFixed(2), path: +Math.max(15, text).toFixed(2) }
}

const rows: string[] = []
const summary: Record<string, unknown> = {}
for (const length of lengths) {
  const all = perRun.map((run) => run[length]!)
  const figure = (pick: (answer: Answer) => number | null | undefined) => real(median(all.map((answers) => p50(answers, pick))))
  const statuses: Record<string, number> = {}
  for (const answer of all.flat()) statuses[answer.code ?? answer.status] = (statuses[answer.code ?? answer.status] ?? 0) + 1
  const words = median(all.flat().filter((a) => a.post).map((a) => a.post!.body.split(/\s+/).length))
  const path = ideal(length as keyof typeof WORDS, all.flat())
  const total = figure((a) => a.post?.timings.totalMs)
  summary[length] = { statuses, planS: figure((a) => a.post?.timings.planMs), lastSectionS: real(median(all.map((answers) => p50(answers, (a) => a.post === undefined ? undefined : (a.post.timings.planMs ?? 0) + (a.post.timings.sectionsMs ?? 0))))), imageS: figure((a) => a.post?.timings.imageMs), totalS: total, wallS: figure((a) => a.wallMs), words, idealPathS: path.path, textPathS: path.text }
  rows.push(`| ${length} | ${JSON.stringify(statuses)} | ${figure((a) => a.post?.timings.planMs)} | ${(summary[length] as { lastSectionS: number }).lastSectionS} | ${figure((a) => a.post?.timings.imageMs)} | **${total}** | ${figure((a) => a.wallMs)} | ${path.path} (text ${path.text}) | **${(total / path.path).toFixed(2)}×** | ${words} of ${WORDS[length as keyof typeof WORDS]} (${((words / WORDS[length as keyof typeof WORDS] - 1) * 100).toFixed(0)} %) |`)
}
const long = summary.long as { totalS: number } | undefined
const short = summary.short as { totalS: number } | undefined
const lines = [
  `# ${name}`, '',
  `${new Date().toISOString()} · Node ${process.version} · pace scale ${scale} (figures converted to real seconds) · ${tokensPerSecond} tokens/s · ${callers} callers × ${rounds} requests per length · median of ${runs} runs' p50`, '',
  '| length | answers | plan s | to the last section s | image s | total s (service) | total s (caller) | critical path s | total / path | words |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows,
  ...(long !== undefined && short !== undefined ? ['', `long / short p50: **${(long.totalS / short.totalS).toFixed(2)}**`] : [])
]
mkdirSync(new URL('./reports/', import.meta.url), { recursive: true })
writeFileSync(new URL(`./reports/${name}.json`, import.meta.url), JSON.stringify({ name, scale, tokensPerSecond, callers, rounds, runs, summary }, null, 2))
writeFileSync(new URL(`./reports/${name}.md`, import.meta.url), lines.join('\n') + '\n')
console.log(lines.join('\n'))
