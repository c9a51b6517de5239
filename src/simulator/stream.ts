// Chat Completions streamed the way OpenAI streams them (Server-Sent Events of chat.completion.chunk,
// a usage chunk when stream_options.include_usage is set, then [DONE]), at the pace given, with the
// faults a streaming client must survive.
import type { ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { countTokens } from './content.ts'
import type { Fault } from './faults.ts'
import { resetAnswer } from './http.ts'

/** Provider timings; `undefined` is the instant simulator. */
export interface Pace {
  firstTokenMs: number
  tokensPerSecond: number
  imageMs: number
  languageMs: number
}

// Small OpenAI models: ~0.5 s to the first token, then 60–80 tokens/s; gpt-image-1 10–60 s per
// image; Natural Language a few hundred ms (shared/research/streaming-latency.md).
export function realPace (scale = 1, tokensPerSecond = 80): Pace {
  return { firstTokenMs: 500 * scale, tokensPerSecond: tokensPerSecond / scale, imageMs: 15_000 * scale, languageMs: 150 * scale }
}

/** How long a whole answer of `content` takes at this pace, for an answer sent in one piece. */
export function writingMs (pace: Pace | undefined, content: string) {
  return pace === undefined ? 0 : pace.firstTokenMs + countTokens(content) / pace.tokensPerSecond * 1000
}

const TICK_MS = 20

export interface StreamOptions {
  model: string
  content: string
  promptTokens: number
  includeUsage: boolean
  pace: Pace | undefined
  fault: Fault
  signal: AbortSignal
}

export async function streamChat (res: ServerResponse, options: StreamOptions) {
  const { content, fault, signal } = options
  const id = `chatcmpl-sim-${Date.now().toString(36)}`
  const created = Math.floor(Date.now() / 1000)
  const chunk = (delta: Record<string, unknown>, finishReason: string | null = null) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: options.model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.write(chunk({ role: 'assistant', content: '' }))
  if (options.pace !== undefined) await sleep(options.pace.firstTokenMs, undefined, { signal })

  // Where a mid-stream fault strikes: a third of the way in, after some real tokens.
  const faultAt = Math.floor(content.length / 3)
  const stopAt = fault.finishLength === true ? Math.floor(content.length / 2) : content.length
  const charsPerTick = options.pace === undefined ? content.length : Math.max(1, Math.round(options.pace.tokensPerSecond * 4 * TICK_MS / 1000))
  // The pace is kept against the clock, not per timer: chunk k is due k ticks after the first
  // token, and a tick that fires late (this process is busy with many streams, or shares its core)
  // sends everything that has come due since, as a provider's tokens keep coming at their rate
  // however busy its client is. Sleeping a tick after each write instead made every stream as much
  // slower as the simulator was loaded, which the service's p99 carried and the unstreamed
  // reference's did not.
  const writingSince = performance.now()
  let tick = 0
  let sent = 0
  while (sent < stopAt) {
    if (options.pace !== undefined) tick = Math.max(tick + 1, Math.floor((performance.now() - writingSince) / TICK_MS) + 1)
    const next = options.pace === undefined ? stopAt : Math.min(stopAt, tick * charsPerTick)
    if (sent < faultAt && next >= faultAt && hasMidStreamFault(fault)) {
      // Some real tokens first, then the fault.
      res.write(chunk({ content: content.slice(sent, faultAt) }))
      midStreamFault(res, fault)
      return
    }
    res.write(chunk({ content: content.slice(sent, next) }))
    sent = next
    if (options.pace !== undefined && sent < stopAt) await sleep(Math.max(0, writingSince + tick * TICK_MS - performance.now()), undefined, { signal })
  }
  if (fault.noDone === true) return res.end()
  res.write(chunk({}, fault.finishLength === true ? 'length' : 'stop'))
  if (options.includeUsage) {
    const completionTokens = countTokens(content.slice(0, sent))
    const usage = { prompt_tokens: options.promptTokens, completion_tokens: completionTokens, total_tokens: options.promptTokens + completionTokens }
    res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: options.model, choices: [], usage })}\n\n`)
  }
  res.end('data: [DONE]\n\n')
}

function hasMidStreamFault (fault: Fault) {
  return fault.cut === true || fault.reset === 'body' || fault.streamError === true || fault.malformed === true || fault.stall === true || fault.hangBody === true
}

/** A fault that strikes mid-stream. A stall keeps the socket open and sends nothing more, until the client gives up. */
function midStreamFault (res: ServerResponse, fault: Fault) {
  // The cut comes a moment after the tokens, so the client has read them, as it would have.
  if (fault.cut === true || fault.reset === 'body') setTimeout(() => resetAnswer(res), 20)
  else if (fault.streamError === true) res.end(`data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', code: null } })}\n\n`)
  else if (fault.malformed === true) res.end('data: {"choices": [{"delta": {"content": "trunc\n\n')
}
