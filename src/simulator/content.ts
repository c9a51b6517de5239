import { createHash } from 'node:crypto'

// Deterministic writing: the same brief always yields the same post, built from the topic.
export interface SimBrief {
  topic: string
  audience?: string
  tone?: string
  keywords?: string[]
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

/** What the plan call carries in its <brief> block: the brief, and how long the post must be. */
export interface PlanRequest extends SimBrief {
  sections?: number
  wordsPerSection?: number
}

function filler (brief: SimBrief, seed: string) {
  const random = seeded(seed)
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!
  const topic = brief.topic.trim()
  const audience = brief.audience?.trim() || 'readers'
  const keywords = brief.keywords?.length ? brief.keywords : [topic]
  const fill = (template: string) => template
    .replaceAll('{topic}', topic).replaceAll('{Topic}', capitalise(topic))
    .replaceAll('{audience}', audience).replaceAll('{Audience}', capitalise(audience))
    .replaceAll('{keyword}', pick(keywords))
  return { pick, fill, topic, audience, openers: OPENERS[brief.tone ?? 'informative'] ?? OPENERS.informative! }
}

/** The plan, as a model following the prompt writes it: as many sections as asked for. */
export function writePlan (request: PlanRequest) {
  const { fill, topic, audience, pick, openers } = filler(request, JSON.stringify(request))
  const count = Math.max(1, Math.min(request.sections ?? 4, HEADINGS.length))
  const title = `${capitalise(topic)}: a practical guide`
  return {
    title,
    metaDescription: `This guide explains ${topic} for ${audience}. ${pick(openers)}`,
    imagePrompt: `An editorial illustration about ${topic}, clean composition, no text`,
    imageAlt: `Editorial illustration for "${title}"`,
    sections: HEADINGS.slice(0, count).map((heading, index) => ({
      heading: fill(heading),
      points: [fill(SENTENCES[index % SENTENCES.length]!), fill(SENTENCES[(index + 3) % SENTENCES.length]!)]
    }))
  }
}

/** What a section call carries in its <section> block. */
export interface SectionRequest {
  brief: SimBrief
  plan?: { title?: string, headings?: string[] }
  index?: number
  heading?: string
  points?: string[]
  words?: number
}

/** One section's paragraphs, close to the number of words asked for, without its heading. */
export function writeSection (request: SectionRequest) {
  const { pick, fill, openers } = filler(request.brief, JSON.stringify(request))
  const target = Math.max(20, request.words ?? 150)
  const paragraphs: string[] = []
  let words = 0
  while (words < target) {
    const sentences = [pick(openers)]
    while (sentences.join(' ').split(' ').length < 70 && words + sentences.join(' ').split(' ').length < target) sentences.push(fill(pick(SENTENCES)))
    const paragraph = sentences.join(' ')
    paragraphs.push(paragraph)
    words += paragraph.split(' ').length
  }
  return paragraphs.join('\n\n')
}

export function countTokens (text: string) {
  return Math.max(1, Math.ceil(text.length / 4))
}
