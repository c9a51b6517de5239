import { z } from 'zod'
import type { UpstreamTarget } from '../config.ts'
import { ServiceError } from '../errors.ts'
import { genAiDuration, genAiTokens } from '../telemetry/instruments.ts'
import { postJson, target, type CallContext } from './http.ts'

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
  target: UpstreamTarget
  maxResponseBytes: number
  /** Used when the target has no API key: Vertex AI takes the service account's token. */
  token?: (() => Promise<string>) | undefined
  /** LOG_PROMPTS: called with every prompt before it is sent. */
  logPrompt?: ((messages: ChatMessage[]) => void) | undefined
}

const tokenCount = z.number().int().nonnegative()

// OpenAI Chat Completions, as also served by Gemini's OpenAI-compatible endpoint, vLLM and Ollama.
const chatCompletion = z.object({
  choices: z.array(z.object({
    message: z.object({ content: z.string().min(1, 'empty completion') })
  })).min(1),
  usage: z.object({ prompt_tokens: tokenCount, completion_tokens: tokenCount, total_tokens: tokenCount })
})

// Caller text is capped by the request schema and a draft by max_completion_tokens, so a prompt
// above this is a model answering far beyond its cap: refused before it is paid for twice.
const MAX_PROMPT_CHARS = 128 * 1024

export async function complete (call: LlmCall, messages: ChatMessage[], extra: Record<string, unknown> = {}) {
  const { answer, usage } = await chat(call, messages, extra, chatCompletion)
  // The schema guarantees one choice; the non-null assertion is checked by zod.
  return { content: answer.choices[0]!.message.content, usage }
}

/** One Chat Completions call whose whole answer `schema` validates, inside the guarded attempt. */
async function chat<T extends z.output<typeof chatCompletion>> (call: LlmCall, messages: ChatMessage[], extra: Record<string, unknown>, schema: z.ZodType<T>) {
  const url = `${trimSlash(call.target.baseUrl)}/chat/completions`
  const promptChars = messages.reduce((total, message) => total + message.content.length, 0)
  if (promptChars > MAX_PROMPT_CHARS) {
    throw new ServiceError('upstream_bad_response', { message: `The prompt would be ${promptChars} characters, above ${MAX_PROMPT_CHARS}.`, details: { upstream: 'llm' } })
  }
  call.logPrompt?.(messages)
  // GenAI semantic conventions; "openai" names the wire format, which every supported server speaks.
  const attributes = { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': call.target.model, 'server.address': target(url).hostname }
  const start = performance.now()
  let answer: T
  try {
    answer = await postJson({
      dispatcher: call.dispatcher,
      upstream: 'llm',
      url,
      headers: await bearer(call.target.apiKey, call.token),
      body: {
        model: call.target.model,
        messages,
        ...(call.target.maxCompletionTokens === undefined ? {} : { max_completion_tokens: call.target.maxCompletionTokens }),
        ...extra
      },
      schema,
      maxResponseBytes: call.maxResponseBytes,
      signal: call.signal,
      guard: call.guard,
      deadlineAt: call.deadlineAt
    })
  } catch (error) {
    genAiDuration.record((performance.now() - start) / 1000, { ...attributes, 'error.type': error instanceof ServiceError ? error.code : 'aborted' })
    throw error
  }
  genAiDuration.record((performance.now() - start) / 1000, attributes)
  const { usage } = answer
  genAiTokens.record(usage.prompt_tokens, { ...attributes, 'gen_ai.token.type': 'input' })
  genAiTokens.record(usage.completion_tokens, { ...attributes, 'gen_ai.token.type': 'output' })
  return { answer, usage: { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens, totalTokens: usage.total_tokens } }
}

/**
 * Asks for structured output (`response_format` with a strict JSON schema derived from `schema`)
 * and validates the answer with the same zod schema, so the two can never disagree.
 */
export async function completeStructured<S extends z.ZodType> (
  call: LlmCall, messages: ChatMessage[], name: string, schema: S
): Promise<{ value: z.output<S>, usage: TokenUsage }> {
  const responseFormat = { type: 'json_schema', json_schema: { name, strict: true, schema: wireSchema(schema) } }
  const { answer, usage } = await chat(call, messages, { response_format: responseFormat }, structuredAnswer(schema))
  return { value: answer.value as z.output<S>, usage }
}

// The structured content is checked as part of the answer, so a model that returns the wrong
// shape is an upstream_bad_response inside the guarded attempt: retried like malformed JSON.
const structuredAnswers = new WeakMap<z.ZodType, z.ZodType<z.output<typeof chatCompletion> & { value: unknown }>>()

function structuredAnswer (schema: z.ZodType) {
  let answer = structuredAnswers.get(schema)
  if (answer === undefined) {
    answer = chatCompletion.transform((completion, context) => {
      const parsed = schema.safeParse(parseJsonContent(completion.choices[0]!.message.content))
      if (parsed.success) return { ...completion, value: parsed.data }
      for (const issue of parsed.error.issues) context.addIssue({ code: 'custom', path: issue.path, message: issue.message })
      return z.NEVER
    })
    structuredAnswers.set(schema, answer)
  }
  return answer
}

// OpenAI's strict mode accepts a subset of JSON Schema and rejects a request whose schema uses
// anything else (string lengths among them). Those limits stay in the zod schema, which checks the
// answer, and reach the model through each field's description.
const UNSUPPORTED_IN_STRICT_MODE = new Set(['$schema', 'minLength', 'maxLength'])

// Generating a JSON schema walks the zod schema; do it once per schema, not once per request.
const wireSchemas = new WeakMap<z.ZodType, unknown>()

function wireSchema (schema: z.ZodType) {
  let json = wireSchemas.get(schema)
  if (json === undefined) {
    json = strictSubset(z.toJSONSchema(schema, { target: 'draft-7' }))
    wireSchemas.set(schema, json)
  }
  return json
}

function strictSubset (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(strictSubset)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value)
    .filter(([key]) => !UNSUPPORTED_IN_STRICT_MODE.has(key))
    .map(([key, child]) => [key, key === 'properties' ? mapValues(child, strictSubset) : strictSubset(child)]))
}

function mapValues (record: unknown, map: (value: unknown) => unknown) {
  return Object.fromEntries(Object.entries(record as Record<string, unknown>).map(([key, value]) => [key, map(value)]))
}

function parseJsonContent (content: string): unknown {
  try {
    return JSON.parse(content)
  } catch {
    // Left to zod, which reports it as a wrong shape with the upstream named.
    return content
  }
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
