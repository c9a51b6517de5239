// npm run bench:hedge [-- --runs 20 --ratio 0.05]
// Hedged Natural Language calls with 5 % of calls slowed to 3 s, as in issue 16's target: p99 at
// most p95 + the hedge delay + 100 ms. Each run is the test's scenario (test/resilience/hedge.test.ts)
// on a fresh simulator, pool and hedger: 100 warm-up calls 10 at a time, then 1,000 calls 50 at a
// time. One run says little, because which calls the chaos slows is random; this prints each run
// and how many met the target. Only 127.0.0.1 is used; each load is bounded by its call count.
import { parseArgs } from 'node:util'
import { Agent } from 'undici'
import { loadConfig } from '../src/config.ts'
import { analyzeSentiment } from '../src/providers/language.ts'
import { createGuard } from '../src/resilience/guard.ts'
import { createHedger } from '../src/resilience/hedge.ts'
import { startSimulator } from '../src/simulator/server.ts'
import { percentile } from './lib/sample.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, ratio: { type: 'string', default: '0.05' } } })
const runs = Number(values.runs)
const ratio = Number(values.ratio)
const guard = loadConfig({ LOG_LEVEL: 'silent', UPSTREAM_BACKOFF_BASE_MS: '5' }).guard
const document = { content: 'Connection pooling keeps latency low and memory flat.', language: 'en' }

let met = 0
for (let run = 1; run <= runs; run++) {
  const simulator = await startSimulator({ latency: { sentiment: { fixedMs: 5, jitterMs: 5 } } })
  const dispatcher = new Agent({ connections: 256 })
  const hedger = createHedger({ ratio })
  const call = { dispatcher, guard: createGuard(guard), hedger, maxResponseBytes: 1e6, target: { baseUrl: simulator.origin, apiKey: 'k' } }
  const analyze = async () => {
    const started = performance.now()
    await analyzeSentiment(call, document)
    return performance.now() - started
  }
  const inBatches = async (count: number, concurrency: number) => {
    const times: number[] = []
    for (let done = 0; done < count; done += concurrency) times.push(...await Promise.all(Array.from({ length: Math.min(concurrency, count - done) }, analyze)))
    return times
  }
  try {
    await inBatches(100, 10)
    simulator.setChaos({ rate: 0.05, kinds: ['slow'], slowMs: 3_000 })
    const before = simulator.stats().requests.sentiment ?? 0
    const times = await inBatches(1_000, 50)
    const [p50, p95, p99] = [percentile(times, 50), percentile(times, 95), percentile(times, 99)]
    const delay = hedger.stats().analyzeSentiment!.p95Ms!
    const ok = p99 <= p95 + delay + 100
    if (ok) met++
    console.log(`run ${run}: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, bound ${(p95 + delay + 100).toFixed(1)} ms ${ok ? 'met' : 'MISSED'}; ` +
      `slowed ${simulator.stats().chaosFaults}, hedges ${(simulator.stats().requests.sentiment ?? 0) - before - 1_000}, still slow ${times.filter((ms) => ms > 2_500).length}`)
  } finally {
    await dispatcher.close()
    await simulator.close()
  }
}
console.log(`ratio ${ratio}: the target met in ${met} of ${runs} runs`)
