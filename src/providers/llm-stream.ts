import { ServiceError } from '../errors.ts'
import { genAiDuration, genAiTokens } from '../telemetry/instruments.ts'
import { CompletionReader } from './completion-reader.ts'
import { target } from './http.ts'
import { bearer, trimSlash, type ChatMessage, type LlmCall, type TokenUsage } from './llm.ts'
import type { LlmTarget } from '../upstreams.ts'

export interface StreamTimeouts {
  /** From sending the request to the first token of content. */
  firstTokenMs: number
  /** Longest silence between two chunks once the answer has started. */
  idleMs: number
}

export interface Streamed {
  /** The answer's text; empty when every delta went to `onDelta`, whose caller keeps the text. */
  content: string
  usage: TokenUsage
  /** stop, or length when the model hit max_completion_tokens. */
  finishReason: string
}

/**
 * One Chat Completions call with `stream: true`, read as Server-Sent Events with eventsource-parser.
 * Two timers replace undici's body timeout: no first token within `firstTokenMs`, or no chunk
 * within `idleMs`, aborts the call (a section that keeps writing is never cut off). A stream that
 * ends without a finish_reason and [DONE], a cut socket and an in-band error are failures, each
 * mapped into the error catalogue; usage comes from the final usage chunk.
 */
export interface StreamCall extends LlmCall {
  timeouts: StreamTimeouts
  onDelta?: ((text: string) => void) | undefined
  /** Called as each attempt starts, so a retried call can start over. */
  onAttempt?: (() => void) | undefined
  /** False once what was streamed has reached the caller: then a failure is final, never retried. */
  retryable?: (() => boolean) | undefined
}

/** Fields added to the request body; a function when they depend on the provider (a schema's dialect). */
export type Extra = Record<string, unknown> | ((target: LlmTarget) => Record<string, unknown>)

/**
 * The call, on the primary provider and, if it fails there before any token, once on the fallback
 * (LiteLLM's and Portkey's fallbacks, per request: the next call tries the primary again unless its
 * breaker is open). Each provider has its own breaker and retry budget: 'llm' and 'llm.fallback'.
 */
export async function streamCompletion<T = undefined> (call: StreamCall, messages: ChatMessage[], extra: Extra = {}, parse?: (content: string) => T) {
  call.logPrompt?.(messages)
  const chain = call.fallback === undefined ? [call.target] : [call.target, call.fallback]
  for (let index = 0; ; index++) {
    try {
      const target = chain[index]!
      return await complete({ ...call, target }, index === 0 ? 'llm' : 'llm.fallback', messages, typeof extra === 'function' ? extra(target) : extra, parse)
    } catch (error) {
      const next = chain[index + 1]
      if (next === undefined || !fallsBack(error, call)) throw error
      call.onFallback?.(next, error as ServiceError)
    }
  }
}

// Errors raised after the provider had sent tokens: the call has started there and ends there.
const afterTokens = new WeakSet<object>()

/**
 * Whether a failed call moves to the fallback: when the primary is down (breaker open, refused,
 * reset, 5xx after the retries the budget allows), stalled before its first token, or rate-limited
 * past what the request can wait (a quota-exhausted 429 too). Never for 400, 401, 403, 404 or 422,
 * which are a broken deployment or request that a fallback would hide; never after a token has
 * arrived; never for our own deadline or a caller who left.
 */
export function fallsBack (error: unknown, call: { signal?: AbortSignal | undefined, retryable?: (() => boolean) | undefined }) {
  if (call.signal?.aborted || call.retryable?.() === false) return false
  if (!(error instanceof ServiceError) || afterTokens.has(error)) return false
  switch (error.code) {
    case 'circuit_open':
    case 'upstream_unavailable':
    case 'upstream_timeout':
    case 'upstream_rate_limited':
      return true
    case 'upstream_error': {
      const status = (error.details as { status?: number } | undefined)?.status ?? 0
      return status >= 500 || status === 429
    }
    default:
      return false
  }
}

async function complete<T> (call: StreamCall, upstream: string, messages: ChatMessage[], extra: Record<string, unknown>, parse: ((content: string) => T) | undefined) {
  const url = `${trimSlash(call.target.baseUrl)}/chat/completions`
  const attributes = { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': call.target.provider, 'gen_ai.request.model': call.target.model, 'server.address': target(url).hostname }
  const start = performance.now()
  const seen = { tokens: false }
  // parse runs inside the attempt: an answer of the wrong shape is retried like a malformed one.
  const run = async () => {
    call.onAttempt?.()
    const streamed = await attempt(call, url, messages, extra, seen)
    return { ...streamed, value: parse?.(streamed.content) as T, provider: call.target.provider }
  }
  try {
    const result = call.guard === undefined ? await run() : await call.guard.run(target(url).origin, { upstream, signal: call.signal, deadlineAt: call.deadlineAt, retryable: call.retryable }, run)
    genAiDuration.record((performance.now() - start) / 1000, attributes)
    genAiTokens.record(result.usage.promptTokens, { ...attributes, 'gen_ai.token.type': 'input' })
    genAiTokens.record(result.usage.completionTokens, { ...attributes, 'gen_ai.token.type': 'output' })
    return result
  } catch (error) {
    genAiDuration.record((performance.now() - start) / 1000, { ...attributes, 'error.type': error instanceof ServiceError ? error.code : 'aborted' })
    if (seen.tokens && typeof error === 'object' && error !== null) afterTokens.add(error)
    throw error
  }
}

async function attempt (call: StreamCall, url: string, messages: ChatMessage[], extra: Record<string, unknown>, seen: { tokens: boolean }): Promise<Streamed> {
  // The caller may have left while this call waited for a slot: an abort listener added now would never fire.
  call.signal?.throwIfAborted()
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream', ...await bearer(call.target.apiKey, call.token) }
  call.signal?.throwIfAborted()
  const { origin, path } = target(url)
  const body = JSON.stringify({
    model: call.target.model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    ...(call.target.maxCompletionTokens === undefined ? {} : { max_completion_tokens: call.target.maxCompletionTokens }),
    ...extra
  })
  return new Promise<Streamed>((resolve, reject) => {
    const reader = new CompletionReader(call, seen, resolve, reject)
    // Our own timers watch the stream: undici's body timeout would cut a section that is still writing.
    call.dispatcher.dispatch({ origin, path, method: 'POST', headers, body, bodyTimeout: 0 }, reader)
  })
}
