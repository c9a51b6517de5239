import { randomUUID } from 'node:crypto'
import type { Dispatcher } from 'undici'
import type { Upstreams } from '../config.ts'
import { ServiceError, type ErrorCode } from '../errors.ts'
import type { TokenSource } from '../providers/google-token.ts'
import { dataUrl, generateImage } from '../providers/image.ts'
import { analyzeSentiment, extractKeywords } from '../providers/language.ts'
import type { ChatMessage, TokenUsage } from '../providers/llm.ts'
import { streamCompletion, type StreamTimeouts } from '../providers/llm-stream.ts'
import { parseAnswer } from '../providers/http.ts'
import { uploadImage } from '../providers/storage.ts'
import type { Guard } from '../resilience/guard.ts'
import { stepWarnings } from '../telemetry/instruments.ts'
import { round, runStep, stepLimit, type Step, type StepTimeouts } from './steps.ts'
import type { Brief } from './brief.ts'
import { echoesInstructions, imagePrompt, LENGTHS, planMessages, planSchema, plainText, sectionMessages, slugify, type Plan } from './prompts.ts'
import { allowedImage, safeMarkdown, safeText, wellFormed } from './safe-output.ts'
import { cleanSection, fitField } from './sections.ts'
import { planResponseFormat } from '../providers/llm.ts'

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
  stream: StreamTimeouts
}

export type OptionalStep = Extract<Step, 'image' | 'sentiment' | 'keywords'>

export type WarningCode = ErrorCode | 'field_trimmed' | 'section_truncated' | 'section_trimmed' | 'tone_mismatch'

export interface Warning {
  step: Step
  code: WarningCode
  message: string
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

  const { dispatcher, upstreams, token, guard, deadlineAt } = deps
  const context = { dispatcher, guard, deadlineAt }
  const llm = { ...context, target: upstreams.llm, maxResponseBytes: deps.maxResponseBytes, token, logPrompt: deps.logPrompt, timeouts: deps.stream }
  const language = { ...context, target: upstreams.language, maxResponseBytes: deps.maxResponseBytes, token }
  const warn = (step: Step, code: WarningCode, message: string) => {
    warnings.push({ step, code, message })
    stepWarnings.add(1, { 'content_engine.step': step, 'error.type': code })
  }

  async function heroImage (stepSignal: AbortSignal) {
    const image = await generateImage({ ...context, target: upstreams.image, signal: stepSignal }, imagePrompt(brief))
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
    const plan = await timed('plan', (stepSignal) => streamCompletion({ ...llm, signal: stepSignal }, planMessages(brief), { response_format: planResponseFormat(planSchema) },
      (content) => checkedPlan(content, brief)))
    const { wordsPerSection } = LENGTHS[brief.length]
    // A cap well above the words asked for: finish_reason "length" then means a runaway section.
    const maxTokens = Math.min(upstreams.llm.maxCompletionTokens ?? Infinity, Math.ceil(wordsPerSection * 4 / 3 * 2.5))
    const sections = await timed('sections', (stepSignal) => Promise.all(plan.value.value.sections.map((_, index) =>
      streamCompletion({ ...llm, signal: stepSignal, target: { ...upstreams.llm, maxCompletionTokens: maxTokens } }, sectionMessages(brief, plan.value.value, index)))))

    const body = safeMarkdown(plan.value.value.sections.map((section, index) => {
      const { text, trimmed } = cleanSection(sections.value[index]!.content, sections.value[index]!.finishReason, wordsPerSection)
      if (trimmed !== undefined) warn('sections', trimmed, `Section ${index + 1} ${trimmed === 'section_truncated' ? 'was cut off by max_completion_tokens and ends at its last full sentence' : 'ran far past its length and was cut at a paragraph'}.`)
      return `## ${section.heading.replace(/\s+/g, ' ')}\n\n${text}`
    }).join('\n\n'), upstreams.image.urlOrigins)
    if (echoesInstructions(body)) {
      throw new ServiceError('upstream_bad_response', { message: 'The LLM answer repeated its instructions.', details: { upstream: 'llm' } })
    }

    // Analysis describes the body that is returned.
    const document = { content: plainText(body), language: brief.language }
    const [sentiment, keywords] = await Promise.all([
      optional('sentiment', (stepSignal) => analyzeSentiment({ ...language, signal: stepSignal }, document)),
      optional('keywords', (stepSignal) => extractKeywords({ ...language, signal: stepSignal }, document, deps.keywordsMax))
    ])
    // The cheap check that replaced rewriting the post: a persuasive post should not read as negative.
    if (brief.tone === 'persuasive' && sentiment.value?.label === 'negative') {
      warn('sentiment', 'tone_mismatch', `The post was asked to be persuasive but its sentiment is negative (score ${sentiment.value.score}).`)
    }
    const hero = await image
    settled = true

    const fields = Object.fromEntries((['title', 'metaDescription', 'imageAlt'] as const).map((name) => {
      const { value, trimmed } = fitField(safeText(plan.value.value[name]), FIELD_LIMITS[name])
      if (trimmed) warn('plan', 'field_trimmed', `The ${name} was longer than ${FIELD_LIMITS[name]} characters and was cut at a word.`)
      return [name, value]
    })) as Record<'title' | 'metaDescription' | 'imageAlt', string>

    return wellFormed({
      id: randomUUID(),
      title: fields.title,
      slug: slugify(fields.title),
      metaDescription: fields.metaDescription,
      body,
      image: hero.value && { url: hero.value.url, alt: fields.imageAlt },
      sentiment: sentiment.value,
      keywords: (keywords.value ?? []).map((keyword) => ({ ...keyword, text: safeText(keyword.text) })),
      usage: [plan.value.usage, ...sections.value.map((section) => section.usage)].reduce(addUsage),
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

function addUsage (a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens
  }
}
