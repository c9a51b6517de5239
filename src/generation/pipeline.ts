import { randomUUID } from 'node:crypto'
import type { Dispatcher } from 'undici'
import type { Upstreams } from '../config.ts'
import { ServiceError } from '../errors.ts'
import { generateImage } from '../providers/image.ts'
import { analyzeSentiment, extractKeywords } from '../providers/language.ts'
import { complete, completeStructured, type TokenUsage } from '../providers/llm.ts'
import type { Brief } from './brief.ts'
import { draftMessages, draftTitle, editMessages, editSchema, imagePrompt, plainText, slugify } from './prompts.ts'

export interface PipelineDeps {
  dispatcher: Dispatcher
  upstreams: Upstreams
  keywordsMax: number
  maxResponseBytes: number
  signal: AbortSignal
}

export type OptionalStep = 'image' | 'sentiment' | 'keywords'

export interface Warning {
  step: OptionalStep
  code: string
  message: string
}

const round = (ms: number) => Math.round(ms * 10) / 10

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

  const llm = { dispatcher: deps.dispatcher, target: deps.upstreams.llm, maxResponseBytes: deps.maxResponseBytes, signal }
  const language = { dispatcher: deps.dispatcher, target: deps.upstreams.language, maxResponseBytes: deps.maxResponseBytes, signal }

  async function optional<T> (step: OptionalStep, run: () => Promise<T>) {
    const start = performance.now()
    try {
      return { value: await run(), ms: round(performance.now() - start) }
    } catch (error) {
      const ms = round(performance.now() - start)
      if (!signal.aborted) warnings.push(toWarning(step, error))
      return { value: null, ms }
    }
  }

  let image: Promise<{ value: { url: string } | null, ms: number | null }> = Promise.resolve({ value: null, ms: null })
  try {
    const draftStart = performance.now()
    const draft = await complete(llm, draftMessages(brief))
    const draftMs = round(performance.now() - draftStart)
    const document = { content: plainText(draft.content), language: brief.language }

    if (brief.image) {
      const prompt = imagePrompt(brief, draftTitle(draft.content, brief))
      image = optional('image', () => generateImage({ dispatcher: deps.dispatcher, target: deps.upstreams.image, signal }, prompt))
    }
    const [sentiment, keywords] = await Promise.all([
      optional('sentiment', () => analyzeSentiment(language, document)),
      optional('keywords', () => extractKeywords(language, document, deps.keywordsMax))
    ])

    const refineStart = performance.now()
    const edit = await completeStructured(llm, editMessages({
      brief,
      draft: draft.content,
      sentiment: sentiment.value && { score: sentiment.value.score, label: sentiment.value.label },
      keywords: [...brief.keywords, ...(keywords.value ?? []).map((keyword) => keyword.text)]
    }), 'blog_post', editSchema)
    const refineMs = round(performance.now() - refineStart)
    const hero = await image

    return {
      id: randomUUID(),
      title: edit.value.title,
      slug: slugify(edit.value.title),
      metaDescription: edit.value.metaDescription,
      body: edit.value.body,
      image: hero.value && { url: hero.value.url, alt: edit.value.imageAlt },
      sentiment: sentiment.value,
      keywords: keywords.value ?? [],
      usage: addUsage(draft.usage, edit.usage),
      timings: {
        draftMs,
        imageMs: hero.ms,
        sentimentMs: sentiment.ms,
        keywordsMs: keywords.ms,
        refineMs,
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
