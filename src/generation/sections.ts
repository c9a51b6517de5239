// What real models write, made into a post: a heading they were told not to write, a section that
// runs far past its length or is cut off by max_completion_tokens, a field longer than asked.
// Each is trimmed, with a warning, where the post can still be served.

const words = (text: string) => text.split(/\s+/).filter(Boolean).length

export interface SectionText {
  text: string
  /** Set when the text had to be cut: why. */
  trimmed?: 'section_truncated' | 'section_trimmed'
}

/** The section's paragraphs, ready to sit under the plan's heading. */
export function cleanSection (content: string, finishReason: string, wordsAsked: number): SectionText {
  // A heading the model added anyway would repeat the plan's.
  let text = content.trim().replace(/^#{1,6}[ \t][^\n]*\n+/, '').trim()
  let trimmed: SectionText['trimmed']
  if (finishReason === 'length') {
    // Cut off mid-sentence by max_completion_tokens: keep what ends a sentence.
    const end = Math.max(text.lastIndexOf('\n\n'), ...['. ', '! ', '? '].map((mark) => text.lastIndexOf(mark) + 1))
    const lastStop = /[.!?]["')\]]*$/.test(text) ? text.length : end
    text = text.slice(0, lastStop > 0 ? lastStop : text.length).trim()
    trimmed = 'section_truncated'
  }
  // Far past its length (a model that ignores the word count): whole paragraphs up to 1.5 times it.
  if (words(text) > 2 * wordsAsked) {
    const kept: string[] = []
    for (const paragraph of text.split(/\n{2,}/)) {
      if (kept.length > 0 && words([...kept, paragraph].join(' ')) > 1.5 * wordsAsked) break
      kept.push(paragraph)
    }
    text = kept.join('\n\n')
    trimmed = 'section_trimmed'
  }
  return trimmed === undefined ? { text } : { text, trimmed }
}

/** `text` cut at a word boundary to at most `max` characters, and whether it was. */
export function fitField (text: string, max: number) {
  if ([...text].length <= max) return { value: text, trimmed: false }
  const cut = [...text].slice(0, max - 1).join('')
  const space = cut.lastIndexOf(' ')
  const atWord = (space > cut.length / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:.-]+$/, '')
  return { value: `${atWord}…`, trimmed: true }
}
