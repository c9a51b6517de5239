// The simulated OpenAI Chat Completions endpoint: a draft from the brief, the final edit from
// the response_format, and the faults only an LLM can have (wrong shape, hostile output).
import { countTokens, editDraft, writeDraft, type EditMaterial, type SimBrief } from './content.ts'
import { HttpError } from './http.ts'
import { imageId } from './images.ts'

type ResponseFormat = { type?: string, json_schema?: { schema?: { properties?: Record<string, unknown> } } } | undefined

export function llmKind (body: Record<string, unknown>) {
  const format = body.response_format as ResponseFormat
  return format?.type === 'json_schema' || format?.type === 'json_object' ? 'edit' : 'draft'
}

// Valid JSON in a shape no client expects: an edit whose fields are missing, or an empty answer.
export function wrongShape (answer: Record<string, unknown>) {
  const choices = answer.choices as Array<{ message: { content: string } }> | undefined
  if (choices?.[0] !== undefined) return { ...answer, choices: [{ ...choices[0], message: { role: 'assistant', content: '{"headline":"?"}' } }] }
  return { unexpected: true }
}

const HOSTILE_MARKDOWN = '\n\n<script>alert(1)</script><img src=x onerror="alert(2)">\n\n' +
  '[click me](javascript:alert(3)) [data](data:text/html,<b>x</b>) [encoded](jav&#x61;script:alert(4)) <javascript:alert(5)>\n\n' +
  '![tracker](https://evil.example/pixel.png) [a real link](https://example.com/page)\n\n<!-- hidden -->'

// What a compromised or prompt-injected model might answer: markup, script links, foreign images,
// and with "echo" its own system prompt.
export function hostile (answer: Record<string, unknown>, request: Record<string, unknown>, mode: 'markup' | 'echo') {
  const choices = answer.choices as Array<{ message: { content: string } }>
  const content = choices[0]!.message.content
  const system = String((request.messages as Array<{ role: string, content: string }>).find((m) => m.role === 'system')?.content ?? '')
  const extra = HOSTILE_MARKDOWN + (mode === 'echo' ? `\n\n${system}` : '')
  let changed: string
  try {
    const edit = JSON.parse(content) as Record<string, string>
    changed = JSON.stringify({ ...edit, title: `<b>${edit.title}</b><script>x()</script>`, body: `${edit.body}${extra}`, imageAlt: `${edit.imageAlt}" onload="x()` })
  } catch {
    changed = content + extra
  }
  return { ...answer, choices: [{ ...choices[0], message: { role: 'assistant', content: changed } }] }
}

export function chatCompletion (body: Record<string, unknown>) {
  const messages = body.messages
  if (typeof body.model !== 'string') throw new HttpError(400, 'model is required')
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages must be a non-empty array')
  const prompt = messages.map((message: { content?: unknown }) => String(message?.content ?? '')).join('\n')
  const lastUser = String(messages.findLast((message: { role?: unknown }) => message?.role === 'user')?.content ?? '')
  const format = body.response_format as ResponseFormat

  let content: string
  if (llmKind(body) === 'edit') {
    const material = dataBlock<EditMaterial>(lastUser, 'material') ?? { brief: { topic: lastUser.slice(0, 200) }, draft: lastUser }
    const properties = Object.keys(format?.json_schema?.schema?.properties ?? { title: 1, metaDescription: 1, body: 1, imageAlt: 1 })
    content = JSON.stringify(editDraft(material, properties))
  } else {
    content = writeDraft(dataBlock<SimBrief>(lastUser, 'brief') ?? { topic: lastUser.slice(0, 200) || 'an untitled topic' })
  }
  const usage = { prompt_tokens: countTokens(prompt), completion_tokens: countTokens(content) }
  return {
    id: `chatcmpl-sim-${imageId(content).slice(0, 12)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens }
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
