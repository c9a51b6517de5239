import { z } from 'zod'

function isLanguageTag (tag: string) {
  try {
    return Intl.getCanonicalLocales(tag).length === 1
  } catch {
    return false
  }
}

/** The body of POST /generate. Unknown fields are rejected rather than silently dropped. */
export const briefSchema = z.strictObject({
  topic: z.string().trim().min(3).max(500),
  audience: z.string().trim().min(1).max(200).optional(),
  tone: z.enum(['informative', 'casual', 'formal', 'persuasive']).default('informative'),
  length: z.enum(['short', 'medium', 'long']).default('medium'),
  keywords: z.array(z.string().trim().min(1).max(100)).max(10).default([]),
  image: z.boolean().default(true),
  language: z.string().max(35).refine(isLanguageTag, 'expected a BCP-47 language tag, e.g. en or pt-BR').default('en')
})

export type Brief = z.output<typeof briefSchema>
