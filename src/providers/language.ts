import { z } from 'zod'
import type { Upstreams } from '../config.ts'
import { postJson, type CallContext } from './http.ts'
import { bearer, trimSlash } from './llm.ts'
import type { Hedger } from '../resilience/hedge.ts'

// Google Cloud Natural Language v1: documents:analyzeSentiment and documents:analyzeEntities.
const sentimentResponse = z.object({
  documentSentiment: z.object({ score: z.number().min(-1).max(1), magnitude: z.number().nonnegative() })
})

const entitiesResponse = z.object({
  entities: z.array(z.object({ name: z.string(), salience: z.number().min(0).max(1) })).default([])
})

// Only the fields read above come back (X-Goog-FieldMask, a system parameter of every Google REST
// API: https://cloud.google.com/apis/docs/system-parameters). Without it, analyzeSentiment repeats
// the whole post sentence by sentence and analyzeEntities lists every mention: ~40 KB for a
// 1,200-word post, parsed and collected for two numbers and a list of names (docs/measured.md).
const FIELD_MASKS: Record<Method, string> = {
  analyzeSentiment: 'documentSentiment',
  analyzeEntities: 'entities.name,entities.salience'
}

type Method = 'analyzeSentiment' | 'analyzeEntities'

export interface LanguageCall extends CallContext {
  target: Upstreams['language']
  maxResponseBytes: number
  /** Used when no API key is configured: Natural Language accepts the service account's token. */
  token?: (() => Promise<string>) | undefined
  /** Sends a second copy of a call that is slower than usual (resilience/hedge.ts). */
  hedger?: Hedger | undefined
}

export interface Document {
  content: string
  language: string
}

export type SentimentLabel = 'positive' | 'neutral' | 'negative'

export async function analyzeSentiment (call: LanguageCall, document: Document) {
  const { documentSentiment } = await analyze(call, 'analyzeSentiment', document, sentimentResponse)
  return { ...documentSentiment, label: sentimentLabel(documentSentiment.score) }
}

export async function extractKeywords (call: LanguageCall, document: Document, max: number) {
  const { entities } = await analyze(call, 'analyzeEntities', document, entitiesResponse)
  const seen = new Set<string>()
  const keywords: Array<{ text: string, salience: number }> = []
  for (const entity of entities.toSorted((a, b) => b.salience - a.salience)) {
    const text = entity.name.trim()
    const key = text.toLocaleLowerCase()
    if (text === '' || seen.has(key)) continue
    seen.add(key)
    keywords.push({ text, salience: entity.salience })
    if (keywords.length === max) break
  }
  return keywords
}

export function sentimentLabel (score: number): SentimentLabel {
  if (score >= 0.25) return 'positive'
  if (score <= -0.25) return 'negative'
  return 'neutral'
}

async function analyze<T> (call: LanguageCall, method: Method, document: Document, schema: z.ZodType<T>) {
  const auth = call.target.apiKey !== undefined ? { 'x-goog-api-key': call.target.apiKey } : await bearer(undefined, call.token)
  const headers = { ...auth, 'x-goog-fieldmask': FIELD_MASKS[method] }
  const send = (signal: AbortSignal | undefined) => request(call, method, document, schema, headers, signal)
  // Both calls are pure functions of the text, cheap and billed per call: safe to hedge.
  return call.hedger === undefined ? await send(call.signal) : await call.hedger.run(method, call.signal, send)
}

function request<T> (call: LanguageCall, method: Method, document: Document, schema: z.ZodType<T>, headers: Record<string, string>, signal: AbortSignal | undefined) {
  const { target } = call
  return postJson({
    dispatcher: call.dispatcher,
    upstream: 'language',
    url: `${trimSlash(target.baseUrl)}/v1/documents:${method}`,
    headers,
    body: { document: { type: 'PLAIN_TEXT', content: document.content, language: document.language }, encodingType: 'UTF8' },
    schema,
    maxResponseBytes: call.maxResponseBytes,
    signal,
    guard: call.guard,
    deadlineAt: call.deadlineAt
  })
}
