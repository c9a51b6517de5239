// Run by upstream-http2.test.ts as its own process (a client spinning in native code blocks the
// event loop, so only a parent can notice and kill it). Builds the service's upstream pool from the
// environment, with UPSTREAM_HTTP2=true, and for DURATION_MS keeps CALLERS streamed Chat
// Completions calls going at once through it; every call is cancelled, some the moment after they
// are dispatched, some while their answer streams. Prints one JSON line with what happened.
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'

const config = loadConfig({ LOG_LEVEL: 'silent', ...process.env } as Record<string, string>)
const app = await buildApp({ config, upstreams: config.upstreams! })
await app.ready()

const callers = Number(process.env.CALLERS)
const deadline = performance.now() + Number(process.env.DURATION_MS)
const { origin, pathname } = new URL(`${config.upstreams!.llm.baseUrl}/chat/completions`)
const body = JSON.stringify({ model: 'simulator-llm', stream: true, messages: [{ role: 'user', content: 'Write about connection pooling. '.repeat(100) }] })
const counts = { cancelledAtOnce: 0, cancelledMidStream: 0, finished: 0, failed: 0 }
const errors = new Set<string>()

async function call (index: number) {
  const controller = new AbortController()
  const atOnce = index % 2 === 0
  // 0 ms: the next turn of the loop, when undici has written the request but the session has not
  // sent it; otherwise once the answer streams (the simulator's first token comes after 25 ms).
  const timer = setTimeout(() => controller.abort(new Error('cancelled')), atOnce ? 0 : 30 + (index % 30))
  try {
    const response = await app.upstream.request({ origin, path: pathname, method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' }, body, signal: controller.signal })
    await response.body.text()
    counts.finished++
  } catch (error) {
    if (controller.signal.aborted) counts[atOnce ? 'cancelledAtOnce' : 'cancelledMidStream']++
    else {
      counts.failed++
      errors.add(`${(error as { code?: string }).code ?? ''} ${(error as Error).message}`)
    }
  } finally {
    clearTimeout(timer)
  }
}

await Promise.all(Array.from({ length: callers }, async (_, caller) => {
  for (let index = caller; performance.now() < deadline; index += callers) {
    await call(index)
    await sleep(1)
  }
}))
await app.close()
console.log(JSON.stringify({ ...counts, errors: [...errors].slice(0, 5), rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) }))
