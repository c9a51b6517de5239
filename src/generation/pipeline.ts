import { randomUUID } from 'node:crypto'
import type { Dispatcher } from 'undici'
import type { Upstreams } from '../config.ts'
import type { LlmTarget } from '../upstreams.ts'
import { ServiceError, type ErrorCode } from '../errors.ts'
import type { TokenSource } from '../providers/google-token.ts'
import { dataUrl, generateImage, generateImagen } from '../providers/image.ts'
import { analyzeSentiment, extractKeywords } from '../providers/language.ts'
import type { ChatMessage, TokenUsage } from '../providers/llm.ts'
import { fallsBack, streamCompletion, type StreamTimeouts } from '../providers/llm-stream.ts'
import { parseAnswer } from '../providers/http.ts'
import { uploadImage } from '../providers/storage.ts'
import type { Guard } from '../resilience/guard.ts'
import type { Hedger } from '../resilience/hedge.ts'
import { stepWarnings } from '../telemetry/instruments.ts'
import { round, runStep, stepLimit, type Step, type StepTimeouts } from './steps.ts'
import type { Brief } from './brief.ts'
import { echoesInstructions, imagePrompt, LENGTHS, planMessages, planSchema, plainText, sectionMessages, slugify, type Plan } from './prompts.ts'
import { allowedImage, safeText, wellFormed } from './safe-output.ts'
import { fitField } from './sections.ts'
import { createReadingOrder, createSection } from './assembly.ts'
import { planResponseFormat, schemaDialect } from '../providers/llm.ts'

export interface PipelineDeps {
  dispatcher: Dispatcher
  upstreams: Upstreams
  keywordsMax: number
  maxResponseBytes: number
  /** The service account's token, on Google Cloud: for upstreams configured without a key. */
  token?: TokenSource | undefined
  guard?: Guard | undefined
  hedger?: Hedger | undefined
  logPrompt?: ((messages: ChatMessage[]) => void) | undefined
  signal: AbortSignal
  /** The request's deadline (epoch ms), and each step's own limit within it. */
  deadlineAt: number
  stepTimeoutsMs: StepTimeouts
  stream: StreamTimeouts
  /** The post's id, known before it is written (a streaming caller gets it first). */
  id?: string
  /** What a streaming caller is told as it happens; the JSON answer needs none of it. */
  events?: PostEvents | undefined
}

export interface PostEvents {
  plan: (plan: { title: string, metaDescription: string, sections: string[] }) => void
  /** Body text in reading order: every delta appended gives the result's body. */
  delta: (section: number, text: string) => void
  image: (image: { url: string, alt: string }) => void
  analysis: (analysis: { sentiment: unknown, keywords: unknown }) => void
  warning: (warning: Warning) => void
}

export type OptionalStep = Extract<Step, 'image' | 'sentiment' | 'keywords'>

export type WarningCode = ErrorCode | 'field_trimmed' | 'section_truncated' | 'section_trimmed' | 'tone_mismatch' | 'fallback_used'

export interface Warning {
  step: Step
  code: WarningCode
  message: string
  /** fallback_used: the provider that served the step. */
  provider?: string
}

// The most a field may be before it is trimmed at a word boundary (the prompt asks for less).
const FIELD_LIMITS = { title: 100, metaDescription: 200, imageAlt: 250 } as const

/**
 * plan (LLM) ──── section 1 … N (LLM, in parallel) ── assemble ─┬─ sentiment ─┬─ result
 * image (from the brief, alongside) ────────────────────────────┴─ keywords ──┘
 * Plan and sections are required; image, sentiment and keywords degrade to a warning.
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

  const { dispatcher, upstreams, token, guard, hedger, deadlineAt } = deps
  const context = { dispatcher, guard, deadlineAt }
  // One fallback_used warning per step, however many of its calls moved.
  const fellBack = new Set<Step>()
  const onFallback = (step: 'plan' | 'sections') => (to: LlmTarget, error: ServiceError) => {
    if (fellBack.has(step)) return
    fellBack.add(step)
    warn(step, 'fallback_used', `The primary LLM failed (${error.code}); ${to.provider} wrote ${step === 'plan' ? 'the plan' : 'one or more sections'}.`, to.provider)
  }
  const llm = { ...context, target: upstreams.llm, fallback: upstreams.llmFallback, maxResponseBytes: deps.maxResponseBytes, token, logPrompt: deps.logPrompt, timeouts: deps.stream }
  const language = { ...context, target: upstreams.language, maxResponseBytes: deps.maxResponseBytes, token, hedger }
  const warn = (step: Step, code: WarningCode, message: string, provider?: string) => {
    const warning: Warning = provider === undefined ? { step, code, message } : { step, code, message, provider }
    warnings.push(warning)
    stepWarnings.add(1, { 'content_engine.step': step, 'error.type': code })
    deps.events?.warning(warning)
  }

  // The primary, and once on Imagen if it fails the way an LLM call moves on (fallsBack): the
  // image step's own time limit covers both.
  async function drawImage (stepSignal: AbortSignal) {
    const prompt = imagePrompt(brief)
    try {
      return await generateImage({ ...context, target: upstreams.image, signal: stepSignal }, prompt)
    } catch (error) {
      const fallback = upstreams.imageFallback
      if (fallback === undefined || !fallsBack(error, { signal: stepSignal })) throw error
      warn('image', 'fallback_used', `The primary image API failed (${(error as ServiceError).code}); ${fallback.provider} drew the image.`, fallback.provider)
      return await generateImagen({ ...context, target: fallback, token, signal: stepSignal }, prompt)
    }
  }

  async function heroImage (stepSignal: AbortSignal) {
    const image = await drawImage(stepSignal)
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
        const failure = toWarning(error)
        warn(step, failure.code, failure.message)
      }
      return { value: null, ms: round(performance.now() - start) }
    }
  }

  // The image needs only the brief: it runs alongside the plan and the sections.
  const image = brief.image ? optional('image', heroImage) : Promise.resolve({ value: null, ms: null })
  let settled = false
  try {
    const plan = await timed('plan', (stepSignal) => streamCompletion({ ...llm, signal: stepSignal, onFallback: onFallback('plan') }, planMessages(brief), (target) => ({ response_format: planResponseFormat(planSchema, schemaDialect(target.provider)) }),
      (content) => checkedPlan(content, brief)))
    const planned = plan.value.value
    const fields = Object.fromEntries((['title', 'metaDescription', 'imageAlt'] as const).map((name) => {
      const { value, trimmed } = fitField(safeText(planned[name]), FIELD_LIMITS[name])
      if (trimmed) warn('plan', 'field_trimmed', `The ${name} was longer than ${FIELD_LIMITS[name]} characters and was cut at a word.`)
      return [name, wellFormed(value)]
    })) as Record<'title' | 'metaDescription' | 'imageAlt', string>
    deps.events?.plan({ title: fields.title, metaDescription: fields.metaDescription, sections: planned.sections.map((section) => wellFormed(section.heading)) })
    image.then((hero) => { if (hero.value !== null) deps.events?.image({ url: hero.value.url, alt: fields.imageAlt }) }, () => {})

    const { wordsPerSection } = LENGTHS[brief.length]
    // A cap well above the words asked for: finish_reason "length" then means a runaway section.
    const maxTokens = Math.min(upstreams.llm.maxCompletionTokens ?? Infinity, Math.ceil(wordsPerSection * 4 / 3 * 2.5))
    const pieces: string[] = []
    const order = createReadingOrder(planned.sections.map((section) => section.heading), (index, text) => {
      const safe = wellFormed(text)
      pieces.push(safe)
      deps.events?.delta(index, safe)
    }, deps.events !== undefined)
    const writers = planned.sections.map((section, index) => createSection(index, section.heading, wordsPerSection, upstreams.image.urlOrigins, order))
    const sections = await timed('sections', (stepSignal) => Promise.all(planned.sections.map(async (_, index) => {
      // The first section is what a reader sees first; the others are held until it is done, and
      // it takes seconds to write. Their calls go out a turn of the event loop later, so that when
      // many plans finish together every post's first section is sent, and answered by the
      // upstream, before any post's later ones.
      if (index > 0) await new Promise((resolve) => setImmediate(resolve))
      const writer = writers[index]!
      const written = await streamCompletion({
        ...llm,
        signal: stepSignal,
        target: { ...upstreams.llm, maxCompletionTokens: maxTokens },
        fallback: upstreams.llmFallback && { ...upstreams.llmFallback, maxCompletionTokens: Math.min(upstreams.llmFallback.maxCompletionTokens ?? Infinity, maxTokens) },
        onFallback: onFallback('sections'),
        onAttempt: () => writer.reset(),
        onDelta: (text) => writer.push(text),
        retryable: () => !writer.committed()
      }, sectionMessages(brief, planned, index))
      const trimmed = writer.finish(written.finishReason)
      if (trimmed !== undefined) warn('sections', trimmed, `Section ${index + 1} ${trimmed === 'section_truncated' ? 'was cut off by max_completion_tokens and ends at its last full sentence' : 'ran far past its length and was cut at a paragraph'}.`)
      return written
    })))
    const body = pieces.join('')

    // Analysis describes the body that is returned.
    const document = { content: plainText(body), language: brief.language }
    const [sentiment, keywords] = await Promise.all([
      optional('sentiment', (stepSignal) => analyzeSentiment({ ...language, signal: stepSignal }, document)),
      optional('keywords', (stepSignal) => extractKeywords({ ...language, signal: stepSignal }, document, deps.keywordsMax))
    ])
    const safeKeywords = (keywords.value ?? []).map((keyword) => ({ ...keyword, text: wellFormed(safeText(keyword.text)) }))
    deps.events?.analysis({ sentiment: sentiment.value, keywords: safeKeywords })
    // The cheap check that replaced rewriting the post: a persuasive post should not read as negative.
    if (brief.tone === 'persuasive' && sentiment.value?.label === 'negative') {
      warn('sentiment', 'tone_mismatch', `The post was asked to be persuasive but its sentiment is negative (score ${sentiment.value.score}).`)
    }
    const hero = await image
    settled = true

    return wellFormed({
      id: deps.id ?? randomUUID(),
      title: fields.title,
      slug: slugify(fields.title),
      metaDescription: fields.metaDescription,
      body,
      image: hero.value && { url: hero.value.url, alt: fields.imageAlt },
      sentiment: sentiment.value,
      keywords: safeKeywords,
      usage: totalUsage([plan.value, ...sections.value]),
      timings: {
        planMs: plan.ms,
        sectionsMs: sections.ms,
        imageMs: hero.ms,
        sentimentMs: sentiment.ms,
        keywordsMs: keywords.ms,
        totalMs: round(performance.now() - startedAt)
      },
      warnings
    })
  } finally {
    deps.signal.removeEventListener('abort', abort)
    // On failure the image call may still be running: stop it, and wait so nothing outlives the
    // request. On success everything has settled, and there is nothing to abort.
    if (!settled) controller.abort(new Error('pipeline failed'))
    await image
  }
}

/** The plan, validated; only a plan with no usable section fails. More sections than asked are cut. */
function checkedPlan (content: string, brief: Brief): Plan {
  let json: unknown
  try { json = JSON.parse(content) } catch { json = content }
  const plan = parseAnswer(planSchema, json, 'llm')
  if (echoesInstructions(`${plan.title}\n${plan.metaDescription}\n${plan.imageAlt}\n${plan.sections.map((s) => `${s.heading} ${s.points.join(' ')}`).join('\n')}`)) {
    throw new ServiceError('upstream_bad_response', { message: 'The LLM answer repeated its instructions.', details: { upstream: 'llm' } })
  }
  return { ...plan, sections: plan.sections.slice(0, LENGTHS[brief.length].sections) }
}

function toWarning (error: unknown): { code: ErrorCode, message: string } {
  if (error instanceof ServiceError) return { code: error.code, message: error.message }
  return { code: 'internal_error', message: 'The step failed unexpectedly.' }
}

/** Every LLM call's tokens, in all and per provider. */
function totalUsage (calls: Array<{ usage: TokenUsage, provider: string }>) {
  const byProvider: Record<string, TokenUsage> = {}
  for (const { usage, provider } of calls) byProvider[provider] = byProvider[provider] === undefined ? usage : addUsage(byProvider[provider], usage)
  return { ...calls.map((call) => call.usage).reduce(addUsage), byProvider }
}

function addUsage (a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens
  }
}
