import type { Upstreams } from '../../src/config.ts'
import type { Brief } from '../../src/generation/brief.ts'
import { draftMessages, draftTitle, editMessages, editSchema, imagePrompt, plainText } from '../../src/generation/prompts.ts'
import { z } from 'zod'

/** POST JSON to an absolute URL and return the parsed answer; each variant brings its own client. */
export type PostJson = (url: string, body: unknown, headers: Record<string, string>) => Promise<any>

const editFormat = { type: 'json_schema', json_schema: { name: 'blog_post', strict: true, schema: z.toJSONSchema(editSchema) } }

/**
 * The same five calls, in the same graph, as src/generation/pipeline.ts, with none of its
 * validation, error mapping or cancellation: the floor of what the calls themselves cost.
 */
export async function fiveCalls (post: PostJson, upstreams: Upstreams, input: Partial<Brief> & { topic: string }) {
  const brief: Brief = { tone: 'informative', length: 'medium', keywords: [], image: true, language: 'en', ...input }
  const llmUrl = `${upstreams.llm.baseUrl}/chat/completions`
  const auth = { authorization: `Bearer ${upstreams.llm.apiKey}` }
  const draft = await post(llmUrl, { model: upstreams.llm.model, messages: draftMessages(brief) }, auth)
  const content: string = draft.choices[0].message.content
  const document = { document: { type: 'PLAIN_TEXT', content: plainText(content), language: brief.language }, encodingType: 'UTF8' }

  const image = post(`${upstreams.image.baseUrl}/images/generations`, {
    model: upstreams.image.model, prompt: imagePrompt(brief, draftTitle(content, brief)), n: 1, size: upstreams.image.size
  }, { authorization: `Bearer ${upstreams.image.apiKey}` })
  const [sentiment, entities] = await Promise.all([
    post(`${upstreams.language.baseUrl}/v1/documents:analyzeSentiment`, document, {}),
    post(`${upstreams.language.baseUrl}/v1/documents:analyzeEntities`, document, {})
  ])
  const keywords = entities.entities.slice(0, 8).map((entity: { name: string, salience: number }) => ({ text: entity.name, salience: entity.salience }))
  const edit = await post(llmUrl, {
    model: upstreams.llm.model,
    messages: editMessages({ brief, draft: content, sentiment: sentiment.documentSentiment, keywords: keywords.map((k: { text: string }) => k.text) }),
    response_format: editFormat
  }, auth)
  const final = JSON.parse(edit.choices[0].message.content)
  const hero = await image
  return { ...final, image: { url: hero.data[0].url, alt: final.imageAlt }, sentiment: sentiment.documentSentiment, keywords }
}
