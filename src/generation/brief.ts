import { z } from 'zod'

// RFC 5646's well-formed language tag (section 2.1), case-insensitive: language with up to three
// extended subtags (zh-yue-HK), script, region, variants, extensions (de-DE-u-co-phonebk), private
// use (en-x-twain, or x-private alone) and the grandfathered tags. Intl.getCanonicalLocales accepts
// only the Unicode subset and rejects extlang, private-use-only and grandfathered tags.
// JSON Schema patterns take no flags, so case-insensitivity is spelt out in the classes.
const ALPHA = '[A-Za-z]'
const ALPHANUM = '[A-Za-z0-9]'
const anyCase = (word: string) => word.replace(/[a-z]/gi, (letter) => `[${letter.toUpperCase()}${letter.toLowerCase()}]`)
const LANGTAG = `(?:${ALPHA}{2,3}(?:-${ALPHA}{3}){0,3}|${ALPHA}{4}|${ALPHA}{5,8})(?:-${ALPHA}{4})?(?:-(?:${ALPHA}{2}|[0-9]{3}))?` +
  `(?:-(?:${ALPHANUM}{5,8}|[0-9]${ALPHANUM}{3}))*(?:-[0-9A-WYZa-wyz](?:-${ALPHANUM}{2,8})+)*(?:-[Xx](?:-${ALPHANUM}{1,8})+)?`
const PRIVATE_USE = `[Xx](?:-${ALPHANUM}{1,8})+`
const GRANDFATHERED = ['en-GB-oed', 'i-ami', 'i-bnn', 'i-default', 'i-enochian', 'i-hak', 'i-klingon', 'i-lux', 'i-mingo', 'i-navajo', 'i-pwn',
  'i-tao', 'i-tay', 'i-tsu', 'sgn-BE-FR', 'sgn-BE-NL', 'sgn-CH-DE', 'art-lojban', 'cel-gaulish', 'no-bok', 'no-nyn', 'zh-guoyu', 'zh-hakka',
  'zh-min', 'zh-min-nan', 'zh-xiang'].map(anyCase).join('|')
export const LANGUAGE_TAG = new RegExp(`^(?:${LANGTAG}|${PRIVATE_USE}|${GRANDFATHERED})$`)

// The limits hold for what the caller sends, and what is left after trimming must not be empty:
// both are expressible in JSON Schema (maxLength, pattern), so the published contract states the
// rules the code applies, and a request valid by the document is never refused. JSON Schema counts
// characters (code points), not UTF-16 units as String.length does: so does this check.
const text = (max: number, minAfterTrim: 1 | 3, description: string) => z.string()
  .refine((value) => value.length <= max || [...value].length <= max, `Too big: expected at most ${max} characters`)
  .regex(minAfterTrim === 1 ? /\S/ : /^\s*\S[\s\S]+\S\s*$/, `expected at least ${minAfterTrim} character${minAfterTrim === 1 ? '' : 's'} after trimming`)
  .meta({ maxLength: max, description })
  .transform((value) => value.trim())

/** The body of POST /generate. Unknown fields are rejected rather than silently dropped. */
export const briefSchema = z.strictObject({
  topic: text(500, 3, 'What the post is about: at most 500 characters, at least 3 once leading and trailing white space is trimmed.'),
  audience: text(200, 1, 'Who the post is for: at most 200 characters, not only white space; trimmed.').optional(),
  tone: z.enum(['informative', 'casual', 'formal', 'persuasive']).default('informative'),
  length: z.enum(['short', 'medium', 'long']).default('medium').meta({ description: 'short, medium or long: 2, 4 or 6 sections.' }),
  keywords: z.array(text(100, 1, 'A keyword hint: at most 100 characters, not only white space; trimmed.')).max(10).default([])
    .meta({ description: 'Up to 10 keyword hints for the writer.' }),
  image: z.boolean().default(true).meta({ description: 'Whether to draw a hero image.' }),
  language: z.string().max(255).regex(LANGUAGE_TAG, 'expected a BCP-47 language tag (RFC 5646), e.g. en, pt-BR or zh-yue-HK').default('en')
    .meta({ description: 'The language to write in, as a well-formed BCP-47 tag (RFC 5646).' })
})

export type Brief = z.output<typeof briefSchema>
