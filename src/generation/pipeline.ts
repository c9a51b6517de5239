import { randomUUID } from 'node:crypto'
import type { Dispatcher } from 'undici'
import type { Upstreams } from '../config.ts'
import { ServiceError, type ErrorCode } from '../errors.ts'
import type { TokenSource } from '../providers/google-token.ts'
import { dataUrl, generateImage } from '../providers/image.ts'
import { analyzeSentiment, extractKeywords } from '../providers/language.ts'
import { complete, completeStructured, type ChatMessage, type TokenUsage } from '../providers/llm.ts'
import { uploadImage } from '../providers/storage.ts'
import type { Guard } from '../resilience/guard.ts'
import { stepWarnings } from '../telemetry/instruments.ts'
import { round, runStep, stepLimit, type Step, type StepTimeouts } from './steps.ts'
import type { Brief } from './brief.ts'
import { draftMessages, draftTitle, echoesInstructions, editMessages, editSchema, imagePrompt, plainText, slugify } from './prompts.ts'
import { allowedImage, safeMarkdown, safeText } from './safe-output.ts'

export interface PipelineDeps {
  dispatcher: Dispatcher
  upstreams: Upstreams
  keywordsMax: number
  maxResponseBytes: number
  /** The service account's token, on Google Cloud: for upstreams configured without a key. */
  token?: TokenSource | undefined
  guard?: Guard | undefined
  logPrompt?: ((messages: ChatMessage[]) => void) | undefined
  signal: AbortSignal
  /** The request's deadline (epoch ms), and each step's own limit within it. */
  deadlineAt: number
  stepTimeoutsMs: StepTimeouts
}

export type OptionalStep = Extract<Step, 'image' | 'sentiment' | 'keywords'>

export interface Warning {
  step: OptionalStep
  code: ErrorCode
  message: string
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

  const { dispatcher, upstreams, token, guard, deadlineAt } = deps
  const context = { dispatcher, guard, deadlineAt }
  const llm = { ...context, target: upstreams.llm, maxResponseBytes: deps.maxResponseBytes, token, logPrompt: deps.logPrompt }
  const language = { ...context, target: upstreams.language, maxResponseBytes: deps.maxResponseBytes, token }

  async function heroImage (prompt: string, stepSignal: AbortSignal) {
    const image = await generateImage({ ...context, target: upstreams.image, signal: stepSignal }, prompt)
    if ('url' in image) {
      if (allowedImage(image.url, upstreams.image.urlOrigins)) return image
      throw new ServiceError('upstream_bad_response', {
        message: 'The image upstream answered with a URL from an origin not in IMAGE_URL_ORIGINS.',
        details: { upstream: 'image' }
      })
    }
    // Current image models answer in base64: with a bucket, the caller gets an object URL instead.
    if (upstreams.storage !== undefined && token !== undefined) {
      return { url: await uploadImage({ ...context, target: upstreams.storage, token, signal: stepSignal }, image.bytes, image.contentType) }
    }
    return { url: dataUrl(image) }
  }

  const timed = <T>(step: Step, run: (stepSignal: AbortSignal) => Promise<T>) =>
    runStep(step, signal, stepLimit(deps.stepTimeoutsMs[step], deadlineAt), run)

  async function optional<T> (step: OptionalStep, run: (stepSignal: AbortSignal) => Promise<T>): Promise<{ value: T | null, ms: number | null }> {
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
  let settled = false
  try {
    const draft = await timed('draft', (stepSignal) => complete({ ...llm, signal: stepSignal }, draftMessages(brief)))
    const text = draft.value.content
    const document = { content: plainText(text), language: brief.language }

    if (brief.image) {
      const prompt = imagePrompt(brief, draftTitle(text, brief))
      image = optional('image', (stepSignal) => heroImage(prompt, stepSignal))
    }
    const [sentiment, keywords] = await Promise.all([
      optional('sentiment', (stepSignal) => analyzeSentiment({ ...language, signal: stepSignal }, document)),
      optional('keywords', (stepSignal) => extractKeywords({ ...language, signal: stepSignal }, document, deps.keywordsMax))
    ])

    const refine = await timed('refine', (stepSignal) => completeStructured({ ...llm, signal: stepSignal }, editMessages({
      brief,
      draft: text,
      sentiment: sentiment.value && { score: sentiment.value.score, label: sentiment.value.label },
      keywords: [...brief.keywords, ...(keywords.value ?? []).map((keyword) => keyword.text)]
    }), 'blog_post', editSchema))
    const edit = refine.value.value
    if (echoesInstructions(`${edit.title}\n${edit.metaDescription}\n${edit.body}\n${edit.imageAlt}`)) {
      throw new ServiceError('upstream_bad_response', { message: 'The LLM answer repeated its instructions.', details: { upstream: 'llm' } })
    }
    const hero = await image
    settled = true
    const title = safeText(edit.title)

    return {
      id: randomUUID(),
      title,
      slug: slugify(title),
      metaDescription: safeText(edit.metaDescription),
      body: safeMarkdown(edit.body, upstreams.image.urlOrigins),
      image: hero.value && { url: hero.value.url, alt: safeText(edit.imageAlt) },
      sentiment: sentiment.value,
      keywords: (keywords.value ?? []).map((keyword) => ({ ...keyword, text: safeText(keyword.text) })),
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
    // On failure the image call may still be running: stop it, and wait so nothing outlives the
    // request. On success everything has settled, and there is nothing to abort.
    if (!settled) controller.abort(new Error('pipeline failed'))
    await image
  }
}

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
