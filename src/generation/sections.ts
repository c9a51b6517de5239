// A field longer than asked (title, meta description, alt text) is cut at a word, with a warning,
// where the post can still be served. Sections are cut in src/generation/assembly.ts.

/** `text` cut at a word boundary to at most `max` characters, and whether it was. */
export function fitField (text: string, max: number) {
  if ([...text].length <= max) return { value: text, trimmed: false }
  const cut = [...text].slice(0, max - 1).join('')
  const space = cut.lastIndexOf(' ')
  const atWord = (space > cut.length / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:.-]+$/, '')
  return { value: `${atWord}…`, trimmed: true }
}
