import { createHash } from 'node:crypto'

// Deterministic writing: the same brief always yields the same post, built from the topic.
export interface SimBrief {
  topic: string
  audience?: string
  tone?: string
  keywords?: string[]
  sections?: number
}

const HEADINGS = [
  'Why {topic} matters', 'How {topic} works in practice', 'Common mistakes with {topic}',
  'Getting started with {topic}', 'Measuring success with {topic}', 'Tools that help with {topic}',
  'What experienced teams do differently', 'Where {topic} is heading'
]

const OPENERS: Record<string, string[]> = {
  informative: ['Here is what the evidence shows.', 'The details are worth understanding.', 'A few facts make this clear.'],
  casual: ['Let us be honest about it.', 'Here is the fun part.', 'You will probably enjoy this bit.'],
  formal: ['The following considerations apply.', 'Several principles are relevant here.', 'This section sets out the essentials.'],
  persuasive: ['This is the opportunity to act.', 'The case is stronger than it looks.', 'The benefits are hard to ignore.']
}

const SENTENCES = [
  '{Topic} rewards teams that start small and measure carefully.',
  'A clear plan for {topic} helps {audience} avoid costly mistakes.',
  'The most useful habit is to review results every week and improve one thing at a time.',
  'Many people find {topic} confusing at first, but the core ideas are simple.',
  'Good documentation and reliable tools make {topic} easier to sustain.',
  'When {topic} goes wrong, the problem is rarely the idea and usually the execution.',
  'Successful projects treat {keyword} as a first-class concern rather than an afterthought.',
  'Teams that skip the basics of {keyword} often face frustrating problems later.',
  'The benefits of {topic} grow over time as experience builds.',
  '{Audience} can get strong results from {topic} without a large budget.'
]

function seeded (text: string) {
  let state = createHash('sha256').update(text).digest().readUInt32LE(0)
  return () => {
    // mulberry32
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

const capitalise = (text: string) => text.charAt(0).toUpperCase() + text.slice(1)

export function writeDraft (brief: SimBrief) {
  const random = seeded(JSON.stringify(brief))
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!
  const topic = brief.topic.trim()
  const audience = brief.audience?.trim() || 'readers'
  const keywords = brief.keywords?.length ? brief.keywords : [topic]
  const fill = (template: string) => template
    .replaceAll('{topic}', topic).replaceAll('{Topic}', capitalise(topic))
    .replaceAll('{audience}', audience).replaceAll('{Audience}', capitalise(audience))
    .replaceAll('{keyword}', pick(keywords))
  const sections = Math.max(1, Math.min(brief.sections ?? 4, HEADINGS.length))
  const openers = OPENERS[brief.tone ?? 'informative'] ?? OPENERS.informative!

  const lines = [`# ${capitalise(topic)}: a practical guide`, '', fill(`This guide explains ${topic} for ${audience}. ${pick(openers)}`)]
  for (let index = 0; index < sections; index++) {
    lines.push('', `## ${fill(HEADINGS[index]!)}`)
    // Longer posts get more paragraphs per section as well as more sections.
    const paragraphs = sections >= 6 ? 2 : 1
    for (let p = 0; p < paragraphs; p++) {
      lines.push('', [pick(openers), fill(pick(SENTENCES)), fill(pick(SENTENCES)), fill(pick(SENTENCES))].join(' '))
    }
  }
  return lines.join('\n')
}

export interface EditMaterial {
  brief: SimBrief
  draft: string
  keywords?: string[]
}

/** The final edit: fills the fields the JSON schema asks for, from the draft it was given. */
export function editDraft (material: EditMaterial, properties: string[]) {
  const { draft } = material
  const heading = /^#\s+(.+)$/m.exec(draft)?.[1]?.trim() ?? capitalise(material.brief.topic)
  const body = draft.replace(/^#\s+.+\n+/m, '').trim()
  const firstParagraph = body.split(/\n{2,}/).find((block) => !block.startsWith('#')) ?? heading
  const keywords = [...new Set((material.keywords ?? []).map((keyword) => keyword.trim()).filter(Boolean))].slice(0, 5)
  const takeaways = keywords.length === 0 ? '' : `\n\n## Key takeaways\n\n${keywords.map((keyword) => `- ${capitalise(keyword)}`).join('\n')}`
  const known: Record<string, string> = {
    title: heading.length > 70 ? `${heading.slice(0, 67).trimEnd()}...` : heading,
    metaDescription: firstParagraph.length > 155 ? `${firstParagraph.slice(0, 152).trimEnd()}...` : firstParagraph,
    body: body + takeaways,
    imageAlt: `Editorial illustration for "${heading}"`
  }
  return Object.fromEntries(properties.map((name) => [name, known[name] ?? '']))
}

export function countTokens (text: string) {
  return Math.max(1, Math.ceil(text.length / 4))
}
