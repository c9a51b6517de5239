// A lexicon method in the manner of VADER (Hutto & Gilbert, 2014): word valences from an
// AFINN-style lexicon, negation and intensifier rules, and VADER's normalisation into [-1, 1].
const LEXICON: Record<string, number> = {
  good: 1.9,
  great: 3.1,
  excellent: 3.2,
  amazing: 2.8,
  wonderful: 2.7,
  best: 3.2,
  better: 1.9,
  benefit: 2,
  benefits: 2,
  clear: 1.6,
  clearer: 1.6,
  confident: 2.2,
  easy: 1.9,
  effective: 2.1,
  efficient: 1.8,
  enjoy: 2.2,
  exciting: 2.2,
  favorite: 2,
  helpful: 1.9,
  ideal: 2.2,
  improve: 1.9,
  improved: 2.1,
  improves: 1.9,
  improvement: 2,
  love: 3.2,
  nice: 1.8,
  opportunity: 1.8,
  positive: 2.6,
  powerful: 1.8,
  practical: 1.2,
  proven: 1.5,
  reliable: 1.8,
  rewarding: 2.4,
  simple: 1.1,
  smart: 1.7,
  strong: 1.7,
  succeed: 2.2,
  success: 2.7,
  successful: 2.8,
  useful: 1.9,
  valuable: 2.1,
  win: 2.8,
  wins: 2.7,
  happy: 2.7,
  calm: 1.3,
  safe: 1.9,
  secure: 1.4,
  thrive: 2.1,
  growth: 1.6,
  trust: 2.3,
  bad: -2.5,
  worse: -2.1,
  worst: -3.1,
  poor: -2.1,
  problem: -1.7,
  problems: -1.7,
  risk: -1.1,
  risks: -1.1,
  mistake: -1.9,
  mistakes: -1.9,
  fail: -2.5,
  failure: -2.3,
  fails: -1.8,
  hard: -0.4,
  difficult: -1.5,
  confusing: -1.3,
  costly: -1.4,
  slow: -1.1,
  waste: -1.8,
  wasted: -2.2,
  painful: -2.2,
  frustrating: -2.3,
  broken: -2.3,
  danger: -2.4,
  dangerous: -2.1,
  error: -1.7,
  errors: -1.7,
  hate: -2.7,
  terrible: -3,
  awful: -2,
  ugly: -2.3,
  weak: -1.9,
  worry: -1.9,
  fear: -2.2,
  loss: -1.3,
  leak: -1.4,
  leaks: -1.4,
  crash: -1.7,
  crashes: -1.7,
  bug: -1.3,
  bugs: -1.3,
  pitfall: -1.5,
  pitfalls: -1.5
}

const NEGATORS = new Set(['not', 'no', 'never', 'none', 'nobody', 'nothing', 'neither', 'nor', 'without', "don't", "doesn't", "isn't", "aren't", "won't", "can't", 'cannot'])
const BOOSTERS: Record<string, number> = { very: 0.293, extremely: 0.293, really: 0.293, highly: 0.293, truly: 0.293, slightly: -0.293, somewhat: -0.293, barely: -0.293 }
const NEGATION_SCALAR = -0.74
const ALPHA = 15

export interface Sentence { text: string, beginOffset: number, score: number, magnitude: number }

function normalise (sum: number) {
  return sum / Math.sqrt(sum * sum + ALPHA)
}

function scoreSentence (text: string) {
  const tokens = text.toLowerCase().match(/[a-z']+/g) ?? []
  let sum = 0
  let magnitude = 0
  tokens.forEach((token, index) => {
    let valence = LEXICON[token]
    if (valence === undefined) return
    const before = tokens.slice(Math.max(0, index - 3), index)
    for (const word of before) {
      const boost = BOOSTERS[word]
      if (boost !== undefined) valence += Math.sign(valence) * boost
    }
    if (before.some((word) => NEGATORS.has(word))) valence *= NEGATION_SCALAR
    sum += valence
    magnitude += Math.abs(valence)
  })
  return { score: normalise(sum), magnitude: magnitude / 4 }
}

export function splitSentences (text: string): Array<{ text: string, beginOffset: number }> {
  const sentences = []
  for (const match of text.matchAll(/[^.!?\n]+[.!?]*/g)) {
    const trimmed = match[0].trim()
    if (trimmed !== '') sentences.push({ text: trimmed, beginOffset: match.index + match[0].indexOf(trimmed) })
  }
  return sentences
}

/** Google's shape: score is the mean sentence score in [-1, 1]; magnitude adds up their strength. */
export function analyzeSentiment (text: string) {
  const sentences: Sentence[] = splitSentences(text).map((sentence) => ({ ...sentence, ...scoreSentence(sentence.text) }))
  const score = sentences.length === 0 ? 0 : sentences.reduce((total, s) => total + s.score, 0) / sentences.length
  const magnitude = sentences.reduce((total, s) => total + s.magnitude, 0)
  const round = (value: number) => Math.round(value * 1000) / 1000
  return { score: round(score), magnitude: round(magnitude), sentences }
}
