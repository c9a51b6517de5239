import { createParser, type EventSourceMessage } from 'eventsource-parser'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { ServiceError } from '../errors.ts'
import { genAiDuration, genAiTokens } from '../telemetry/instruments.ts'
import { retryAfter, target, toServiceError } from './http.ts'
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

const chunkSchema = z.object({
  choices: z.array(z.object({
    delta: z.object({ content: z.string().nullish() }).nullish(),
    finish_reason: z.string().nullish()
  })).optional(),
  usage: z.object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative(), total_tokens: z.number().int().nonnegative() }).nullish(),
  error: z.looseObject({ message: z.string().optional(), type: z.string().nullish() }).optional()
})

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
  const controller = new AbortController()
  const onAbort = () => controller.abort(call.signal!.reason)
  call.signal?.addEventListener('abort', onAbort, { once: true })
  let timer = setTimeout(() => controller.abort(stalled('first token', call.timeouts.firstTokenMs)), call.timeouts.firstTokenMs)
  let idling = false
  // Called on every chunk once tokens flow: the idle timer is created once and then refreshed,
  // not cleared and created again for each token.
  const idle = () => {
    if (idling) {
      timer.refresh()
      return
    }
    idling = true
    clearTimeout(timer)
    timer = setTimeout(() => controller.abort(stalled('next chunk', call.timeouts.idleMs)), call.timeouts.idleMs)
  }
  let response: Dispatcher.ResponseData | undefined
  try {
    const { origin, path } = target(url)
    response = await call.dispatcher.request({
      origin,
      path,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...await bearer(call.target.apiKey, call.token) },
      body: JSON.stringify({
        model: call.target.model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
        ...(call.target.maxCompletionTokens === undefined ? {} : { max_completion_tokens: call.target.maxCompletionTokens }),
        ...extra
      }),
      signal: controller.signal,
      // Our own timers watch the stream: undici's body timeout would cut a section that is still writing.
      bodyTimeout: 0
    })
    if (response.statusCode < 200 || response.statusCode > 299) return await errorStatus(response)
    return await read(response, call, idle, call.maxResponseBytes, seen)
  } catch (error) {
    response?.body.destroy()
    throw mapError(error, controller.signal, call.signal)
  } finally {
    clearTimeout(timer)
    call.signal?.removeEventListener('abort', onAbort)
  }
}

async function read (response: Dispatcher.ResponseData, call: { onDelta?: ((text: string) => void) | undefined }, idle: () => void, maxBytes: number, seen: { tokens: boolean }): Promise<Streamed> {
  // A section's deltas go to its writer, which keeps them: a second copy here, a string grown by a
  // token at a time for the seconds the section takes, would only add to what the old generation
  // has to collect.
  const keep = call.onDelta === undefined
  let content = ''
  let characters = 0
  let finishReason: string | undefined
  let usage: TokenUsage | undefined
  let done = false
  let failure: ServiceError | undefined
  let started = false
  const parser = createParser({
    onEvent (event: EventSourceMessage) {
      if (failure !== undefined || done) return
      if (event.data === '[DONE]') { done = true; return }
      let json: unknown
      try { json = JSON.parse(event.data) } catch { failure = badStream('a chunk that is not JSON'); return }
      const parsed = chunkSchema.safeParse(json)
      if (!parsed.success) { failure = badStream('a chunk of an unexpected shape'); return }
      const chunk = parsed.data
      if (chunk.error !== undefined) {
        failure = new ServiceError('upstream_error', { message: `The llm upstream reported an error mid-stream: ${chunk.error.message ?? 'unknown'}.`, details: { upstream: 'llm', status: 500, inBand: true, type: chunk.error.type ?? undefined } })
        return
      }
      if (chunk.usage != null) usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens, totalTokens: chunk.usage.total_tokens }
      for (const choice of chunk.choices ?? []) {
        const text = choice.delta?.content
        if (text != null && text !== '') {
          started = true
          seen.tokens = true
          characters += text.length
          if (keep) content += text
          else call.onDelta!(text)
        }
        if (choice.finish_reason != null) finishReason = choice.finish_reason
      }
    }
  })
  const decoder = new TextDecoder()
  let size = 0
  // 'data' events, not `for await`: a stream is hundreds of small chunks, and the async iterator
  // costs each one a promise, a microtask and a nextTick (a seventh of the service's CPU at
  // provider pace, by the profile).
  await new Promise<void>((resolve, reject) => {
    const body = response.body
    const stop = (error: unknown) => {
      body.off('data', onData)
      body.destroy()
      reject(error)
    }
    const onData = (bytes: Buffer) => {
      if (started) idle()
      // The parser holds an unfinished line: a stream that never ends one must not grow without bound.
      size += bytes.length
      if (size > maxBytes) {
        stop(new ServiceError('upstream_response_too_large', { message: 'The llm upstream answer exceeded the size limit.', details: { upstream: 'llm' } }))
        return
      }
      parser.feed(decoder.decode(bytes, { stream: true }))
      if (failure !== undefined) stop(failure)
    }
    if (body.errored !== null) {
      reject(body.errored)
      return
    }
    body.on('data', onData)
    body.once('end', resolve)
    body.once('error', reject)
    // Closed with neither: what `for await` reports as a premature close. (After 'end' or 'error'
    // the promise has settled and this changes nothing.)
    body.once('close', () => reject(Object.assign(new Error('The answer ended before it was complete.'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })))
  })
  // Without [DONE] or a finish_reason, the stream was cut short: the text is not the whole answer.
  if (!done || finishReason === undefined) throw badStream('a stream that ended without finish_reason and [DONE]')
  if (characters === 0) throw badStream('an empty completion')
  return {
    content,
    finishReason,
    usage: usage ?? { promptTokens: 0, completionTokens: Math.ceil(characters / 4), totalTokens: Math.ceil(characters / 4) }
  }
}

async function errorStatus (response: Dispatcher.ResponseData): Promise<never> {
  const text = await readSome(response.body)
  throw new ServiceError('upstream_error', {
    message: `The llm upstream answered ${response.statusCode}.`,
    details: { upstream: 'llm', status: response.statusCode, ...withRetryAfter(retryAfter(response.headers)), ...(/insufficient_quota/.test(text) ? { quotaExhausted: true } : {}) }
  })
}

const withRetryAfter = (ms: number | undefined) => ms === undefined ? {} : { retryAfterMs: ms }

async function readSome (body: Dispatcher.ResponseData['body']) {
  let text = ''
  for await (const chunk of body) {
    text += String(chunk)
    if (text.length > 16 * 1024) { body.destroy(); break }
  }
  return text
}

const stalled = (what: string, ms: number) => new ServiceError('upstream_timeout', {
  message: `The llm upstream sent no ${what} within ${ms} ms.`, details: { upstream: 'llm' }, cause: { code: 'UND_ERR_BODY_TIMEOUT' }
})

const badStream = (what: string) => new ServiceError('upstream_bad_response', { message: `The llm upstream sent ${what}.`, details: { upstream: 'llm' } })

/** Our own abort (the caller's deadline or departure) passes through; a stall and a cut socket are the upstream's. */
function mapError (error: unknown, own: AbortSignal, caller: AbortSignal | undefined) {
  if (caller?.aborted) return caller.reason
  if (own.aborted) return own.reason
  return toServiceError(error, 'llm', undefined)
}
