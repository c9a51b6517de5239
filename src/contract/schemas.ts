import { z } from 'zod'
import { catalogue, type ErrorCode } from '../errors.ts'

// The shapes the service answers with, as zod schemas: the OpenAPI document is generated from
// these, and the route's return type is checked against postSchema at compile time.

const ms = z.number().nonnegative().nullable()
const tokens = z.object({ promptTokens: z.number().int().nonnegative(), completionTokens: z.number().int().nonnegative(), totalTokens: z.number().int().nonnegative() })

export const warningSchema = z.object({
  step: z.enum(['plan', 'sections', 'image', 'sentiment', 'keywords']),
  code: z.enum([...Object.keys(catalogue) as ErrorCode[], 'field_trimmed', 'section_truncated', 'section_trimmed', 'tone_mismatch', 'fallback_used', 'image_not_retained']),
  message: z.string(),
  provider: z.string().optional().meta({ description: 'fallback_used only: the provider that served the step.' })
}).meta({
  description: 'Something the post is served without, or with less of: an optional step that failed (its error code), a field ' +
    'trimmed at a word (field_trimmed), a section cut off by the token limit (section_truncated) or far past its length ' +
    '(section_trimmed), a persuasive post whose sentiment is negative (tone_mismatch), or a step the fallback LLM wrote ' +
    'because the primary failed it (fallback_used), or a replayed post whose inline image was not kept (image_not_retained).'
})

export const postSchema = z.object({
  id: z.uuid(),
  title: z.string(),
  slug: z.string(),
  metaDescription: z.string(),
  body: z.string().meta({ description: 'The post in Markdown: raw HTML removed, links only to http(s), images only from allowed origins.' }),
  image: z.object({ url: z.string(), alt: z.string() }).nullable(),
  sentiment: z.object({ score: z.number().min(-1).max(1), magnitude: z.number().nonnegative(), label: z.enum(['negative', 'neutral', 'positive']) }).nullable(),
  keywords: z.array(z.object({ text: z.string(), salience: z.number() })),
  usage: tokens.extend({
    byProvider: z.record(z.string(), tokens).meta({ description: 'The same, per LLM provider (gen_ai.provider.name, or the host): two when a fallback wrote part of the post.' })
  }),
  timings: z.object({ planMs: ms, sectionsMs: ms, imageMs: ms, sentimentMs: ms, keywordsMs: ms, totalMs: z.number().nonnegative() })
    .meta({ description: 'Milliseconds per step; null for a step that did not run.' }),
  warnings: z.array(warningSchema)
})

export type Post = z.output<typeof postSchema>

export const healthSchema = z.object({ status: z.literal('ok') })

export const readinessSchema = z.object({
  status: z.literal('ok'),
  redis: z.enum(['ok', 'not_configured']).meta({ description: 'not_configured: no REDIS_URL, shared state lives in this instance\'s memory.' })
})

/** The error body, narrowed to the codes a given status can carry. */
export function errorSchema (codes: readonly ErrorCode[]) {
  return z.object({
    error: z.object({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional().meta({ description: 'invalid_request: [{path, message}]; upstream errors: {upstream, status?, …}' })
    }),
    requestId: z.string().meta({ description: 'Also in the x-request-id header.' })
  })
}

// The data of each Server-Sent Event of a streamed answer; `result` is a Post, `error` an error
// body with the status the JSON answer would have had.
export const streamEventSchemas = {
  accepted: z.object({ id: z.uuid(), requestId: z.string() }),
  plan: z.object({ title: z.string(), metaDescription: z.string(), sections: z.array(z.string()) }),
  delta: z.object({ section: z.number().int().nonnegative(), text: z.string() }),
  image: z.object({ url: z.string(), alt: z.string() }),
  analysis: z.object({ sentiment: postSchema.shape.sentiment, keywords: postSchema.shape.keywords }),
  warning: warningSchema,
  result: postSchema,
  error: errorSchema(Object.keys(catalogue) as ErrorCode[]).extend({ status: z.number().int().min(400).max(599) })
}
