import { z } from 'zod'
import type { LlmTarget } from '../upstreams.ts'
import type { ServiceError } from '../errors.ts'
import type { CallContext } from './http.ts'

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface TokenUsage {
  promptTokens: number
  completionTokens: number
  totalTokens: number
}

export interface LlmCall extends CallContext {
  target: LlmTarget
  /** Where the call goes if `target` fails it before any token (fallsBack in llm-stream.ts). */
  fallback?: LlmTarget | undefined
  /** Called as the call moves to the fallback, with what the primary did. */
  onFallback?: ((to: LlmTarget, error: ServiceError) => void) | undefined
  maxResponseBytes: number
  /** Used when the target has no API key: Vertex AI takes the service account's token. */
  token?: (() => Promise<string>) | undefined
  /** LOG_PROMPTS: called with every prompt before it is sent. */
  logPrompt?: ((messages: ChatMessage[]) => void) | undefined
}

/**
 * Which JSON Schema dialect a provider's structured output accepts. OpenAI's strict mode needs
 * every object closed (`additionalProperties: false`). Google's OpenAI-compatible endpoints (Vertex
 * AI, the Gemini API) document structured output with the OpenAI SDK's parse helper, which sends
 * that same strict shape, but Gemini's classic `responseSchema` (an OpenAPI 3.0 subset) answers 400
 * "Unknown name additionalProperties" for it (prism-php/prism#974), and no source says which of
 * Gemini's two schema fields the compatibility layer fills. Without the keyword the schema is
 * valid in both; nothing is lost, because the zod schema checks every answer either way.
 */
export type SchemaDialect = 'openai' | 'google'

export function schemaDialect (provider: string): SchemaDialect {
  return provider.startsWith('gcp.') ? 'google' : 'openai'
}

/**
 * `response_format` for structured output: a strict JSON schema derived from `schema`, so the
 * answer can be checked with the same zod schema and the two never disagree.
 */
export function planResponseFormat (schema: z.ZodType, dialect: SchemaDialect = 'openai') {
  return { type: 'json_schema', json_schema: { name: 'post_plan', strict: true, schema: wireSchema(schema)[dialect] } }
}

// OpenAI's strict mode accepts a subset of JSON Schema and rejects a request whose schema uses
// anything else (string lengths among them). Those limits stay in the zod schema, which checks the
// answer, and reach the model through each field's description.
const UNSUPPORTED_IN_STRICT_MODE = new Set(['$schema', 'minLength', 'maxLength', 'minItems', 'maxItems'])

// Generating a JSON schema walks the zod schema; do it once per schema, not once per request.
const wireSchemas = new WeakMap<z.ZodType, Record<SchemaDialect, unknown>>()

function wireSchema (schema: z.ZodType) {
  let json = wireSchemas.get(schema)
  if (json === undefined) {
    const draft = z.toJSONSchema(schema, { target: 'draft-7' })
    json = { openai: strictSubset(draft, true), google: strictSubset(draft, false) }
    wireSchemas.set(schema, json)
  }
  return json
}

// Strict mode also wants every object closed (additionalProperties: false); Google's dialect
// leaves the keyword out.
function strictSubset (value: unknown, closed: boolean): unknown {
  if (Array.isArray(value)) return value.map((item) => strictSubset(item, closed))
  if (value === null || typeof value !== 'object') return value
  const subset = Object.fromEntries(Object.entries(value)
    .filter(([key]) => !UNSUPPORTED_IN_STRICT_MODE.has(key) && key !== 'additionalProperties')
    .map(([key, child]) => [key, key === 'properties' ? mapValues(child, (item) => strictSubset(item, closed)) : strictSubset(child, closed)]))
  return closed && subset.type === 'object' ? { ...subset, additionalProperties: false } : subset
}

function mapValues (record: unknown, map: (value: unknown) => unknown) {
  return Object.fromEntries(Object.entries(record as Record<string, unknown>).map(([key, value]) => [key, map(value)]))
}

/** Authorization from the configured key, else from the service account's token, else none. */
export async function bearer (apiKey: string | undefined, token: (() => Promise<string>) | undefined): Promise<Record<string, string>> {
  if (apiKey !== undefined) return { authorization: `Bearer ${apiKey}` }
  if (token !== undefined) return { authorization: `Bearer ${await token()}` }
  return {}
}

export function trimSlash (url: string) {
  return url.endsWith('/') ? url.replace(/\/+$/, '') : url
}
