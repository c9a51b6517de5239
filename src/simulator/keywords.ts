import { splitSentences } from './sentiment.ts'

// RAKE, Rapid Automatic Keyword Extraction (Rose et al., 2010): candidate phrases are the runs
// between stop words; a word scores degree / frequency; a phrase scores the sum of its words.
const STOP_WORDS = new Set(('a about above after again against all also am an and any are as at be because been before being ' +
  'below between both but by can could did do does doing down during each even every few for from further had has have ' +
  'having he her here hers him his how i if in into is it its itself just let like make makes many may me more most much ' +
  'must my no nor not now of off on once one only or other our ours out over own per same she should so some such than ' +
  'that the their theirs them then there these they this those through to too under until up upon us very was we well ' +
  'were what when where which while who whom why will with within without would you your yours first next last every ' +
  'new way ways thing things get gets use used using often many well part start see keep take rather usually rarely ' +
  'later small large least shows goes here less lot lots find finds found treat treats explain explains enjoy ' +
  'probably matter matters work works help helps need needs face faces build builds grow grows makes made give gives').split(' '))

const MAX_PHRASE_WORDS = 3

export interface Entity { name: string, salience: number, mentions: number, offsets: number[] }

export function extractEntities (text: string, limit = 25): Entity[] {
  const phrases: Array<{ words: string[], surface: string, offset: number }> = []
  for (const sentence of splitSentences(text)) {
    let run: Array<{ word: string, surface: string, offset: number }> = []
    const flush = () => {
      // A long run between stop words is cut into phrases of at most MAX_PHRASE_WORDS.
      for (let start = 0; start < run.length; start += MAX_PHRASE_WORDS) {
        const part = run.slice(start, start + MAX_PHRASE_WORDS)
        phrases.push({ words: part.map((r) => r.word), surface: part.map((r) => r.surface).join(' '), offset: part[0]!.offset })
      }
      run = []
    }
    for (const match of sentence.text.matchAll(/[\p{L}\p{N}'-]+|[,;:()"]/gu)) {
      const surface = match[0]
      const word = surface.toLowerCase()
      if (!/[\p{L}]/u.test(word) || STOP_WORDS.has(word) || word.length < 3) {
        flush()
        continue
      }
      run.push({ word, surface, offset: sentence.beginOffset + match.index })
    }
    flush()
  }

  const frequency = new Map<string, number>()
  const degree = new Map<string, number>()
  for (const { words } of phrases) {
    for (const word of words) {
      frequency.set(word, (frequency.get(word) ?? 0) + 1)
      degree.set(word, (degree.get(word) ?? 0) + words.length)
    }
  }

  const candidates = new Map<string, { name: string, score: number, mentions: number, offsets: number[] }>()
  for (const phrase of phrases) {
    const key = phrase.words.join(' ')
    const score = phrase.words.reduce((total, word) => total + degree.get(word)! / frequency.get(word)!, 0)
    const entry = candidates.get(key) ?? { name: phrase.surface, score: 0, mentions: 0, offsets: [] }
    // RAKE alone favours long one-off phrases; weighting by mentions makes salience reflect how
    // central a phrase is to the text, which is what Natural Language's salience means.
    entry.mentions += 1
    entry.score = score * entry.mentions
    entry.offsets.push(phrase.offset)
    candidates.set(key, entry)
  }

  const ranked = [...candidates.values()].sort((a, b) => b.score - a.score || a.name.localeCompare(b.name)).slice(0, limit)
  const total = ranked.reduce((sum, entry) => sum + entry.score, 0) || 1
  return ranked.map((entry) => ({
    name: entry.name,
    salience: Math.round((entry.score / total) * 10_000) / 10_000,
    mentions: entry.mentions,
    offsets: entry.offsets
  }))
}
