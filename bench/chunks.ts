// npm run bench:chunks [-- --callers 100 --seconds 3 --rounds 8 --pace-scale 0.25]
// What one streamed chunk of an LLM answer costs the service's main thread, from undici's floor up.
// The simulator (its own process, pinned to the second core) streams sections over HTTPS and
// HTTP/2 at a provider's pace; this process, pinned to the first, keeps --callers sections in
// flight for --seconds in each of three ways, in turn, --rounds times:
//   request   dispatcher.request() and the body's 'data' events, nothing done with the bytes: how
//             the service read streams before CompletionReader
//   dispatch  a dispatch handler that only counts the chunks: the floor the service reads from now
//   service   streamCompletion, as a section calls it (each delta to a callback)
// Each round is charged the main thread's CPU (process.threadCpuUsage) per chunk received. This
// machine's cores are shared, and a round can run twice as slow as the next: compare the modes
// within a round, and the medians. Only 127.0.0.1 is used; the simulator is stopped by PID.
import { parseArgs } from 'node:util'
import type { Dispatcher } from 'undici'
import { loadConfig } from '../src/config.ts'
import { sectionMessages, type Plan } from '../src/generation/prompts.ts'
import { createUpstreamAgent } from '../src/plugins/upstream-pool.ts'
import { streamCompletion } from '../src/providers/llm-stream.ts'
import { throwawayCertificates } from '../test/tls.ts'
import { pin, startProcess } from './lib/processes.ts'
import { median } from './lib/sample.ts'

const { values } = parseArgs({ options: { callers: { type: 'string', default: '100' }, seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '8' }, 'pace-scale': { type: 'string', default: '0.25' } } })
const callers = Number(values.callers)
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)

const tls = throwawayCertificates('chunks', (remove) => process.once('exit', remove))
const simulator = await startProcess(['src/simulator/main.ts', '--port', '0', '--pace', 'real', '--pace-scale', values['pace-scale'], '--keep-alive-ms', '60000', '--tls-cert', tls.cert, '--tls-key', tls.key], {}, /"origin":"(https:\/\/127\.0\.0\.1:\d+)"/)
const pinned = pin(simulator.pid, '1') && pin(process.pid, '0')
// The service's own pool, as its defaults make it, trusting the simulator's CA.
const { pool } = loadConfig({ UPSTREAM_TLS_CA_FILE: tls.ca })
const dispatcher = createUpstreamAgent(pool)

// A long post's section: ~333 words, as the simulator writes them at the pace asked for.
const plan = { title: 'Pools', metaDescription: 'One pool per process.', imageAlt: 'pipes', sections: Array.from({ length: 6 }, (_, index) => ({ heading: `Part ${index + 1}`, points: ['why', 'how'] })) } satisfies Plan
const messages = sectionMessages({ topic: 'Connection pools in Node', tone: 'informative', length: 'long', keywords: [], image: true, language: 'en' }, plan, 1)
const target = { baseUrl: `${simulator.origin}/v1`, apiKey: 'sk-bench', model: 'gpt-bench', provider: 'openai' }
const options = { origin: simulator.origin, path: '/v1/chat/completions', method: 'POST' as const, headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: 'Bearer sk-bench' }, body: JSON.stringify({ model: target.model, messages, stream: true, stream_options: { include_usage: true } }), bodyTimeout: 0 }

let chunks = 0
const modes = {
  async request () {
    const { body } = await dispatcher.request(options)
    await new Promise<void>((resolve, reject) => {
      body.on('data', () => { chunks++ })
      body.once('end', resolve)
      body.once('error', reject)
    })
  },
  dispatch () {
    return new Promise<void>((resolve, reject) => {
      const counter: Dispatcher.DispatchHandler = { onRequestStart: () => {}, onResponseStart: () => {}, onResponseData: () => { chunks++ }, onResponseEnd: () => resolve(), onResponseError: (_controller, error) => reject(error) }
      dispatcher.dispatch(options, counter)
    })
  },
  async service () {
    // Each delta is one chunk (the simulator sends one SSE event per write).
    await streamCompletion({ dispatcher, target, maxResponseBytes: 4 << 20, timeouts: { firstTokenMs: 30_000, idleMs: 30_000 }, onDelta: () => { chunks++ } }, messages)
  }
} satisfies Record<string, () => Promise<void>>
type Mode = keyof typeof modes

const perChunk: Record<Mode, number[]> = { request: [], dispatch: [], service: [] }
const perCall: Record<Mode, number[]> = { request: [], dispatch: [], service: [] }
try {
  for (const mode of Object.keys(modes) as Mode[]) await Promise.all(Array.from({ length: 20 }, modes[mode]))
  for (let round = 1; round <= rounds; round++) {
    for (const mode of Object.keys(modes) as Mode[]) {
      chunks = 0
      let calls = 0
      const until = Date.now() + seconds * 1000
      const before = process.threadCpuUsage()
      await Promise.all(Array.from({ length: callers }, async () => {
        while (Date.now() < until) { await modes[mode](); calls++ }
      }))
      const { user, system } = process.threadCpuUsage(before)
      perChunk[mode].push((user + system) / chunks)
      perCall[mode].push((user + system) / calls / 1000)
    }
    console.log(`round ${round}: ${(Object.keys(modes) as Mode[]).map((mode) => `${mode} ${perChunk[mode].at(-1)!.toFixed(1)} µs`).join(' · ')} per chunk`)
  }
} finally {
  await dispatcher.close()
  await simulator.stop()
}
console.log(`\n${rounds} rounds of ${seconds} s, ${callers} sections in flight, pace × ${values['pace-scale']}, HTTPS and HTTP/2, ${pinned ? 'this process on core 0, the simulator on core 1' : 'not pinned'}; main-thread CPU, median of the rounds:`)
for (const mode of Object.keys(modes) as Mode[]) console.log(`${mode.padEnd(9)} ${median(perChunk[mode]).toFixed(1)} µs per chunk, ${median(perCall[mode]).toFixed(2)} ms per section`)
