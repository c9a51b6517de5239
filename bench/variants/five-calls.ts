import type { Upstreams } from '../../src/config.ts'
import type { Brief } from '../../src/generation/brief.ts'
import { imagePrompt, LENGTHS, planMessages, planSchema, plainText, sectionMessages, type Plan } from '../../src/generation/prompts.ts'
import { planResponseFormat } from '../../src/providers/llm.ts'

/** POST JSON to an absolute URL and return the parsed answer; each variant brings its own client. */
export type PostJson = (url: string, body: unknown, headers: Record<string, string>) => Promise<any>

/**
 * The same calls, in the same graph, as src/generation/pipeline.ts (plan, then the sections in
 * parallel, the image alongside, then sentiment and entities), with none of its validation, error
 * mapping, streaming or cancellation: the floor of what the calls themselves cost. (The name is
 * older than the plan-first pipeline.)
 */
export async function fiveCalls (post: PostJson, upstreams: Upstreams, input: Partial<Brief> & { topic: string }) {
  const brief: Brief = { tone: 'informative', length: 'medium', keywords: [], image: true, language: 'en', ...input }
  const llmUrl = `${upstreams.llm.baseUrl}/chat/completions`
  const auth = { authorization: `Bearer ${upstreams.llm.apiKey}` }
  const image = post(`${upstreams.image.baseUrl}/images/generations`, {
    model: upstreams.image.model, prompt: imagePrompt(brief), n: 1, size: upstreams.image.size
  }, { authorization: `Bearer ${upstreams.image.apiKey}` })
  const planned = await post(llmUrl, { model: upstreams.llm.model, messages: planMessages(brief), response_format: planResponseFormat(planSchema) }, auth)
  const plan: Plan = JSON.parse(planned.choices[0].message.content)
  plan.sections = plan.sections.slice(0, LENGTHS[brief.length].sections)
  const sections = await Promise.all(plan.sections.map((_, index) => post(llmUrl, { model: upstreams.llm.model, messages: sectionMessages(brief, plan, index) }, auth)))
  const body = plan.sections.map((section, index) => `## ${section.heading}\n\n${sections[index].choices[0].message.content}`).join('\n\n')
  const document = { document: { type: 'PLAIN_TEXT', content: plainText(body), language: brief.language }, encodingType: 'UTF8' }
  const [sentiment, entities] = await Promise.all([
    post(`${upstreams.language.baseUrl}/v1/documents:analyzeSentiment`, document, {}),
    post(`${upstreams.language.baseUrl}/v1/documents:analyzeEntities`, document, {})
  ])
  const keywords = entities.entities.slice(0, 8).map((entity: { name: string, salience: number }) => ({ text: entity.name, salience: entity.salience }))
  const hero = await image
  return { title: plan.title, metaDescription: plan.metaDescription, body, image: { url: hero.data[0].url, alt: plan.imageAlt }, sentiment: sentiment.documentSentiment, keywords }
}
