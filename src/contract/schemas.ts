import { z } from 'zod'
import { catalogue, type ErrorCode } from '../errors.ts'

// The shapes the service answers with, as zod schemas: the OpenAPI document is generated from
// these, and the route's return type is checked against postSchema at compile time.

const ms = z.number().nonnegative().nullable()

export const warningSchema = z.object({
  step: z.enum(['image', 'sentiment', 'keywords']),
  code: z.enum(Object.keys(catalogue) as [ErrorCode, ...ErrorCode[]]),
  message: z.string()
}).meta({ description: 'An optional step that failed; the post is served without its part.' })

export const postSchema = z.object({
  id: z.uuid(),
  title: z.string(),
  slug: z.string(),
  metaDescription: z.string(),
  body: z.string().meta({ description: 'The post in Markdown: raw HTML removed, links only to http(s), images only from allowed origins.' }),
  image: z.object({ url: z.string(), alt: z.string() }).nullable(),
  sentiment: z.object({ score: z.number().min(-1).max(1), magnitude: z.number().nonnegative(), label: z.enum(['negative', 'neutral', 'positive']) }).nullable(),
  keywords: z.array(z.object({ text: z.string(), salience: z.number() })),
  usage: z.object({ promptTokens: z.number().int().nonnegative(), completionTokens: z.number().int().nonnegative(), totalTokens: z.number().int().nonnegative() }),
  timings: z.object({ draftMs: ms, imageMs: ms, sentimentMs: ms, keywordsMs: ms, refineMs: ms, totalMs: z.number().nonnegative() })
    .meta({ description: 'Milliseconds per step; null for a step that did not run.' }),
  warnings: z.array(warningSchema)
})

export type Post = z.output<typeof postSchema>

export const healthSchema = z.object({ status: z.literal('ok') })

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
