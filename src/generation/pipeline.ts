import { randomUUID } from 'node:crypto'
import { SpanStatusCode, trace } from '@opentelemetry/api'
import type { Dispatcher } from 'undici'
import type { Upstreams } from '../config.ts'
import { ServiceError } from '../errors.ts'
import type { TokenSource } from '../providers/google-token.ts'
import { dataUrl, generateImage } from '../providers/image.ts'
import { analyzeSentiment, extractKeywords } from '../providers/language.ts'
import { complete, completeStructured, type TokenUsage } from '../providers/llm.ts'
import { uploadImage } from '../providers/storage.ts'
import { stepDuration, stepWarnings } from '../telemetry/instruments.ts'
import type { Brief } from './brief.ts'
import { draftMessages, draftTitle, editMessages, editSchema, imagePrompt, plainText, slugify } from './prompts.ts'

export interface PipelineDeps {
  dispatcher: Dispatcher
  upstreams: Upstreams
  keywordsMax: number
  maxResponseBytes: number
  /** The service account's token, on Google Cloud: for upstreams configured without a key. */
  token?: TokenSource | undefined
  signal: AbortSignal
}

export type Step = 'draft' | 'image' | 'sentiment' | 'keywords' | 'refine'
export type OptionalStep = Extract<Step, 'image' | 'sentiment' | 'keywords'>

export interface Warning {
  step: OptionalStep
  code: string
  message: string
}

const tracer = trace.getTracer('content-engine')
const round = (ms: number) => Math.round(ms * 10) / 10

/** Runs one step in its own span (the parent of its upstream calls), timed in ms and in the metric. */
async function timed<T> (step: Step, run: () => Promise<T>): Promise<{ value: T, ms: number }> {
  return tracer.startActiveSpan(`pipeline ${step}`, async (span) => {
    const start = performance.now()
    let outcome = 'ok'
    try {
      return { value: await run(), ms: round(performance.now() - start) }
    } catch (error) {
      outcome = 'error'
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof ServiceError ? error.code : 'error' })
      throw error
    } finally {
      stepDuration.record((performance.now() - start) / 1000, { 'content_engine.step': step, 'content_engine.outcome': outcome })
      span.end()
    }
  })
}

/**
 * draft ─┬─ image ───────────────────────┐
 *        ├─ sentiment ─┐                 ├─ assemble
 *        └─ keywords ──┴─ refine (LLM) ──┘
 * Draft and refine are required; image, sentiment and keywords degrade to a warning.
 */
export async function generatePost (brief: Brief, deps: PipelineDeps) {
  deps.signal.throwIfAborted()
  const startedAt = performance.now()
  const warnings: Warning[] = []
  // One controller for the whole pipeline: a failed required step or a gone caller stops the rest.
  const controller = new AbortController()
  const abort = () => controller.abort(deps.signal.reason)
  deps.signal.addEventListener('abort', abort, { once: true })
  const signal = controller.signal

  const { dispatcher, upstreams, token } = deps
  const llm = { dispatcher, target: upstreams.llm, maxResponseBytes: deps.maxResponseBytes, token, signal }
  const language = { dispatcher, target: upstreams.language, maxResponseBytes: deps.maxResponseBytes, token, signal }

  async function heroImage (prompt: string) {
    const image = await generateImage({ dispatcher, target: upstreams.image, signal }, prompt)
    if ('url' in image) return image
    // Current image models answer in base64: with a bucket, the caller gets an object URL instead.
    if (upstreams.storage !== undefined && token !== undefined) {
      return { url: await uploadImage({ dispatcher, target: upstreams.storage, token, signal }, image.bytes, image.contentType) }
    }
    return { url: dataUrl(image) }
  }

  async function optional<T> (step: OptionalStep, run: () => Promise<T>): Promise<{ value: T | null, ms: number | null }> {
    const start = performance.now()
    try {
      return await timed(step, run)
    } catch (error) {
      if (!signal.aborted) {
        const warning = toWarning(step, error)
        warnings.push(warning)
        stepWarnings.add(1, { 'content_engine.step': step, 'error.type': warning.code })
      }
      return { value: null, ms: round(performance.now() - start) }
    }
  }

  let image: Promise<{ value: { url: string } | null, ms: number | null }> = Promise.resolve({ value: null, ms: null })
  try {
    const draft = await timed('draft', () => complete(llm, draftMessages(brief)))
    const text = draft.value.content
    const document = { content: plainText(text), language: brief.language }

    if (brief.image) {
      const prompt = imagePrompt(brief, draftTitle(text, brief))
      image = optional('image', () => heroImage(prompt))
    }
    const [sentiment, keywords] = await Promise.all([
      optional('sentiment', () => analyzeSentiment(language, document)),
      optional('keywords', () => extractKeywords(language, document, deps.keywordsMax))
    ])

    const refine = await timed('refine', () => completeStructured(llm, editMessages({
      brief,
      draft: text,
      sentiment: sentiment.value && { score: sentiment.value.score, label: sentiment.value.label },
      keywords: [...brief.keywords, ...(keywords.value ?? []).map((keyword) => keyword.text)]
    }), 'blog_post', editSchema))
    const edit = refine.value.value
    const hero = await image

    return {
      id: randomUUID(),
      title: edit.title,
      slug: slugify(edit.title),
      metaDescription: edit.metaDescription,
      body: edit.body,
      image: hero.value && { url: hero.value.url, alt: edit.imageAlt },
      sentiment: sentiment.value,
      keywords: keywords.value ?? [],
      usage: addUsage(draft.value.usage, refine.value.usage),
      timings: {
        draftMs: draft.ms,
        imageMs: hero.ms,
        sentimentMs: sentiment.ms,
        keywordsMs: keywords.ms,
        refineMs: refine.ms,
        totalMs: round(performance.now() - startedAt)
      },
      warnings
    }
  } finally {
    deps.signal.removeEventListener('abort', abort)
    // On failure the image call may still be running: stop it, and wait so nothing outlives the request.
    controller.abort(new Error('pipeline finished'))
    await image
  }
}

export type Post = Awaited<ReturnType<typeof generatePost>>

function toWarning (step: OptionalStep, error: unknown): Warning {
  if (error instanceof ServiceError) return { step, code: error.code, message: error.message }
  return { step, code: 'internal_error', message: `The ${step} step failed unexpectedly.` }
}

function addUsage (a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens
  }
}
