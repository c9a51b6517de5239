// The simulated OpenAI Chat Completions endpoint: the plan from the response_format, a section of
// prose otherwise, each as long as the prompt asks; and the faults only an LLM can have (wrong
// shape, hostile output).
import { countTokens, writePlan, writeSection, type PlanRequest, type SectionRequest } from './content.ts'
import { HttpError } from './http.ts'
import { imageId } from './images.ts'

type ResponseFormat = { type?: string } | undefined
export type LlmKind = 'plan' | 'section'

export function llmKind (body: Record<string, unknown>): LlmKind {
  const format = body.response_format as ResponseFormat
  return format?.type === 'json_schema' || format?.type === 'json_object' ? 'plan' : 'section'
}

// Valid JSON in a shape no client expects: a plan whose fields are missing, or no choices at all.
export function wrongShape (answer: Record<string, unknown>, kind: LlmKind | undefined) {
  const choices = answer.choices as Array<{ message: { content: string } }> | undefined
  if (kind === 'plan' && choices?.[0] !== undefined) return { ...answer, choices: [{ ...choices[0], message: { role: 'assistant', content: '{"headline":"?"}' } }] }
  return { unexpected: true }
}

const HOSTILE_MARKDOWN = '\n\n<script>alert(1)</script><img src=x onerror="alert(2)">\n\n' +
  '[click me](javascript:alert(3)) [data](data:text/html,<b>x</b>) [encoded](jav&#x61;script:alert(4)) <javascript:alert(5)>\n\n' +
  '![tracker](https://evil.example/pixel.png) [a real link](https://example.com/page)\n\n<!-- hidden -->'

/** What a compromised or prompt-injected model might write: markup, script links, foreign images, and with "echo" its own system prompt. */
export function hostileContent (content: string, request: Record<string, unknown>, mode: 'markup' | 'echo') {
  const system = String((request.messages as Array<{ role: string, content: string }>).find((m) => m.role === 'system')?.content ?? '')
  const extra = HOSTILE_MARKDOWN + (mode === 'echo' ? `\n\n${system}` : '')
  try {
    const plan = JSON.parse(content) as Record<string, unknown>
    return JSON.stringify({ ...plan, title: `<b>${String(plan.title)}</b><script>x()</script>`, imageAlt: `${String(plan.imageAlt)}" onload="x()`, metaDescription: `${String(plan.metaDescription)}${mode === 'echo' ? ` ${system}` : ''}` })
  } catch {
    return content + extra
  }
}

export function chatContent (body: Record<string, unknown>) {
  const messages = body.messages
  if (typeof body.model !== 'string') throw new HttpError(400, 'model is required')
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages must be a non-empty array')
  const lastUser = String(messages.findLast((message: { role?: unknown }) => message?.role === 'user')?.content ?? '')
  const prompt = messages.map((message: { content?: unknown }) => String(message?.content ?? '')).join('\n')
  const fallbackBrief = { topic: lastUser.slice(0, 200) || 'an untitled topic' }
  // The plan holds the fields the response_format's schema asks for, as a strict-mode model's does.
  const asked = Object.keys((body.response_format as { json_schema?: { schema?: { properties?: object } } } | undefined)?.json_schema?.schema?.properties ?? {})
  const plan = (): Record<string, unknown> => {
    const written = writePlan(dataBlock<PlanRequest>(lastUser, 'brief') ?? fallbackBrief)
    return asked.length === 0 ? written : Object.fromEntries(asked.map((key) => [key, written[key as keyof typeof written] ?? '']))
  }
  const content = llmKind(body) === 'plan'
    ? JSON.stringify(plan())
    : writeSection(dataBlock<SectionRequest>(lastUser, 'section') ?? { brief: fallbackBrief })
  return { content, promptTokens: countTokens(prompt) }
}

export function chatCompletion (body: Record<string, unknown>, content: string, promptTokens: number, finishReason = 'stop') {
  const completionTokens = countTokens(content)
  return {
    id: `chatcmpl-sim-${imageId(content).slice(0, 12)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: finishReason }],
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
  }
}

function dataBlock<T> (text: string, tag: string): T | undefined {
  const match = new RegExp(`<${tag}>\\s*([\\s\\S]*?)\\s*</${tag}>`).exec(text)
  if (match === null) return undefined
  try {
    return JSON.parse(match[1]!) as T
  } catch {
    return undefined
  }
}
