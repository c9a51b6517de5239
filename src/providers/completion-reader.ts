import type { IncomingHttpHeaders } from 'node:http'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { ServiceError } from '../errors.ts'
import { retryAfter, toServiceError } from './http.ts'
import type { StreamCall, Streamed } from './llm-stream.ts'
import type { TokenUsage } from './llm.ts'

const chunkSchema = z.object({
  choices: z.array(z.object({
    delta: z.object({ content: z.string().nullish() }).nullish(),
    finish_reason: z.string().nullish()
  })).optional(),
  usage: z.object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative(), total_tokens: z.number().int().nonnegative() }).nullish(),
  error: z.looseObject({ message: z.string().optional(), type: z.string().nullish() }).optional()
})

const ERROR_TEXT_BYTES = 16 * 1024

/**
 * Reads one streamed answer as undici's dispatch handler: each chunk goes straight from the
 * connection into the SSE parser. `request()` would first push it through a Readable for us to
 * read back: a stream is hundreds of chunks, and that detour cost each 1.7 µs of undici's 10.4
 * (`npm run bench:chunks`, docs/measured.md). The handler API is undici's lowest level
 * (Dispatcher.md: "less stable than the higher-level methods", changed in a major version), so
 * this class is the one place that depends on it.
 *
 * Two timers replace undici's body timeout. The call settles once, on the first of: the end of the
 * answer, an upstream error, a failure found in the answer, a timer, or the caller leaving; every
 * later event is ignored. A failure that comes before undici has started the request is applied in
 * `onRequestStart`, before anything is sent.
 */
export class CompletionReader implements Dispatcher.DispatchHandler {
  readonly #call: StreamCall
  readonly #seen: { tokens: boolean }
  readonly #resolve: (value: Streamed) => void
  readonly #reject: (error: unknown) => void
  readonly #parser = createParser({ onEvent: (event) => this.#onEvent(event) })
  readonly #decoder = new TextDecoder()
  // A section's deltas go to its writer, which keeps them: a second copy here, a string grown by a
  // token at a time for the seconds the section takes, would only add to what the old generation
  // has to collect.
  readonly #keep: boolean
  #controller: Dispatcher.DispatchController | undefined
  #settled = false
  #failure: unknown
  #timer: NodeJS.Timeout
  #idling = false
  #lastChunkAt = 0
  #status = 0
  #headers: IncomingHttpHeaders = {}
  #errorText = ''
  #size = 0
  #content = ''
  #characters = 0
  #finishReason: string | undefined
  #usage: TokenUsage | undefined
  #done = false
  readonly #onAbort = () => this.#fail(this.#call.signal!.reason)

  constructor (call: StreamCall, seen: { tokens: boolean }, resolve: (value: Streamed) => void, reject: (error: unknown) => void) {
    this.#call = call
    this.#seen = seen
    this.#resolve = resolve
    this.#reject = reject
    this.#keep = call.onDelta === undefined
    call.signal?.addEventListener('abort', this.#onAbort, { once: true })
    this.#timer = setTimeout(() => this.#fail(stalled('first token', call.timeouts.firstTokenMs)), call.timeouts.firstTokenMs)
  }

  onRequestStart (controller: Dispatcher.DispatchController) {
    this.#controller = controller
    if (this.#settled) controller.abort(this.#failure as Error)
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders) {
    this.#status = statusCode
    this.#headers = headers
  }

  onResponseData (_controller: Dispatcher.DispatchController, bytes: Buffer) {
    if (this.#settled) return
    if (this.#status < 200 || this.#status > 299) {
      // The error body is read only to tell an exhausted quota; past 16 KiB the rest is not wanted.
      this.#errorText += String(bytes)
      if (this.#errorText.length > ERROR_TEXT_BYTES) this.#fail(this.#statusError())
      return
    }
    if (this.#characters > 0) this.#idle()
    // The parser holds an unfinished line: a stream that never ends one must not grow without bound.
    this.#size += bytes.length
    if (this.#size > this.#call.maxResponseBytes) {
      this.#fail(new ServiceError('upstream_response_too_large', { message: 'The llm upstream answer exceeded the size limit.', details: { upstream: 'llm' } }))
      return
    }
    try {
      this.#parser.feed(this.#decoder.decode(bytes, { stream: true }))
    } catch (error) {
      // onDelta belongs to the caller: whatever it throws ends this call, not undici's connection.
      this.#fail(error)
    }
  }

  onResponseEnd () {
    if (this.#settled) return
    if (this.#status < 200 || this.#status > 299) return this.#fail(this.#statusError())
    // Without [DONE] or a finish_reason, the stream was cut short: the text is not the whole answer.
    if (!this.#done || this.#finishReason === undefined) return this.#fail(badStream('a stream that ended without finish_reason and [DONE]'))
    if (this.#characters === 0) return this.#fail(badStream('an empty completion'))
    const estimate = Math.ceil(this.#characters / 4)
    this.#settle()
    this.#resolve({
      content: this.#content,
      finishReason: this.#finishReason,
      usage: this.#usage ?? { promptTokens: 0, completionTokens: estimate, totalTokens: estimate }
    })
  }

  onResponseError (_controller: Dispatcher.DispatchController | null, error: Error) {
    // A refused or reset connection, a cut socket, a closed pool: the upstream's failure.
    this.#fail(toServiceError(error, 'llm', undefined))
  }

  #onEvent (event: EventSourceMessage) {
    if (this.#settled || this.#done) return
    if (event.data === '[DONE]') { this.#done = true; return }
    let json: unknown
    try { json = JSON.parse(event.data) } catch { return this.#fail(badStream('a chunk that is not JSON')) }
    const parsed = chunkSchema.safeParse(json)
    if (!parsed.success) return this.#fail(badStream('a chunk of an unexpected shape'))
    const chunk = parsed.data
    if (chunk.error !== undefined) {
      return this.#fail(new ServiceError('upstream_error', { message: `The llm upstream reported an error mid-stream: ${chunk.error.message ?? 'unknown'}.`, details: { upstream: 'llm', status: 500, inBand: true, type: chunk.error.type ?? undefined } }))
    }
    if (chunk.usage != null) this.#usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens, totalTokens: chunk.usage.total_tokens }
    for (const choice of chunk.choices ?? []) {
      const text = choice.delta?.content
      if (text != null && text !== '') {
        this.#seen.tokens = true
        this.#characters += text.length
        if (this.#keep) this.#content += text
        else this.#call.onDelta!(text)
        if (this.#settled) return
      }
      if (choice.finish_reason != null) this.#finishReason = choice.finish_reason
    }
  }

  // Called on every chunk once tokens flow. The idle timer is armed once; each chunk only notes
  // its time, and the timer, when it fires, fails the call if the silence has lasted idleMs, or
  // waits out the rest. Refreshing the timer on every chunk moved it in Node's timer list, which
  // cost 0.31 ms of CPU a post of ~1,300 chunks among 250 callers' streams; 0.05 ms now (CPU
  // profiles in docs/measured.md).
  #idle () {
    this.#lastChunkAt = performance.now()
    if (this.#idling) return
    this.#idling = true
    clearTimeout(this.#timer)
    this.#armIdle(this.#call.timeouts.idleMs)
  }

  #armIdle (ms: number) {
    this.#timer = setTimeout(() => {
      const silentMs = performance.now() - this.#lastChunkAt
      const idleMs = this.#call.timeouts.idleMs
      if (silentMs >= idleMs) this.#fail(stalled('next chunk', idleMs))
      else this.#armIdle(idleMs - silentMs)
    }, ms)
  }

  #statusError () {
    const ms = retryAfter(this.#headers)
    return new ServiceError('upstream_error', {
      message: `The llm upstream answered ${this.#status}.`,
      details: { upstream: 'llm', status: this.#status, ...(ms === undefined ? {} : { retryAfterMs: ms }), ...(/insufficient_quota/.test(this.#errorText) ? { quotaExhausted: true } : {}) }
    })
  }

  #settle () {
    this.#settled = true
    clearTimeout(this.#timer)
    this.#call.signal?.removeEventListener('abort', this.#onAbort)
  }

  #fail (error: unknown) {
    if (this.#settled) return
    this.#settle()
    this.#failure = error
    // Stops the upstream at once (a stream reset, or the socket closed), or, for a request still
    // queued, before it is sent (onRequestStart). undici then reports the abort to onResponseError,
    // which finds the call settled.
    this.#controller?.abort(error as Error)
    this.#reject(error)
  }
}

const stalled = (what: string, ms: number) => new ServiceError('upstream_timeout', {
  message: `The llm upstream sent no ${what} within ${ms} ms.`, details: { upstream: 'llm' }, cause: { code: 'UND_ERR_BODY_TIMEOUT' }
})

const badStream = (what: string) => new ServiceError('upstream_bad_response', { message: `The llm upstream sent ${what}.`, details: { upstream: 'llm' } })
