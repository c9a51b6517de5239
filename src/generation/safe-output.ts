// What an LLM writes is untrusted: a post may be rendered as HTML on someone's site, so it leaves
// here with no raw HTML, links only to http(s), and images only from origins we configured. The
// Markdown is parsed (mdast-util-from-markdown), taken to HTML's tree (mdast-util-to-hast, with its
// raw HTML parsed by hast-util-raw), sanitised there with GitHub's schema (hast-util-sanitize), and
// written back as Markdown: code spans and blocks keep `Array<string>` as written, no regular expression guesses.
import type { Element, Root as HastRoot } from 'hast'
import { raw } from 'hast-util-raw'
import { sanitize, defaultSchema, type Schema } from 'hast-util-sanitize'
import { toMdast } from 'hast-util-to-mdast'
import { fromMarkdown } from 'mdast-util-from-markdown'
import { gfmToMarkdown } from 'mdast-util-gfm'
import { toHast } from 'mdast-util-to-hast'
import { toMarkdown } from 'mdast-util-to-markdown'
import { SKIP, visit } from 'unist-util-visit'

/** Decodes what a browser would before reading a scheme: entities, and invisible or control characters. */
function normalise (url: string) {
  return url
    .replace(/&#x([0-9a-f]+);?/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#(\d+);?/g, (_, decimal: string) => String.fromCodePoint(Number(decimal)))
    .replace(/&colon;/gi, ':')
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
    .replace(/[\u0000-\u0020\u007f-\u009f\u200b-\u200f\u2028\u2029\ufeff]/g, '')
}

/** The URL a browser would follow, if it is http(s); undefined for every other scheme or non-URL. */
function webUrl (url: string) {
  const parsed = URL.parse(normalise(url))
  return parsed?.protocol === 'http:' || parsed?.protocol === 'https:' ? parsed : undefined
}

export function allowedImage (url: string, imageOrigins: readonly string[]) {
  const parsed = webUrl(url)
  return parsed !== undefined && imageOrigins.includes(parsed.origin)
}

// GitHub's schema, with links and images held to http(s) and no id clobbering of our own.
const SCHEMA: Schema = { ...defaultSchema, protocols: { href: ['http', 'https'], src: ['http', 'https'] } }

// Plain prose: one line of letters, digits, spaces and punctuation that Markdown gives no meaning
// here (no `*_[]<>&#|~\`, no list marker, no double space, no URL for GFM's autolinks). Most of a
// post's paragraphs are that, and the round trip below returns them unchanged: five tree passes
// and two deep copies for nothing. A property test holds the two paths together
// (test/security/output.test.ts); anything else takes the full pass.
const PLAIN_PROSE = /^[\p{L}\p{N}][\p{L}\p{N} ,.;:'"?!()%/’‘“”–—-]*$/u
const NOT_PLAIN = / {2}|:\/\/|www\.|^\d+[.)]|\s$/i

export function isPlainProse (text: string) {
  return PLAIN_PROSE.test(text) && !NOT_PLAIN.test(text)
}

/** Markdown safe to render: raw HTML dropped, unsafe links reduced to their text, foreign images to their alt. */
export function safeMarkdown (markdown: string, imageOrigins: readonly string[]) {
  return isPlainProse(markdown) ? markdown : sanitiseMarkdown(markdown, imageOrigins)
}

/** The full pass: parse, sanitise as HTML, write back. */
export function sanitiseMarkdown (markdown: string, imageOrigins: readonly string[]) {
  // Raw HTML is parsed as a browser would (hast-util-raw, parse5), so the sanitiser sees real
  // elements: text inside a tag block survives, scripts and event handlers do not.
  const html = raw(toHast(fromMarkdown(markdown), { allowDangerousHtml: true }) as HastRoot)
  // Our rules first, while every URL is still there to judge: a link that is not http(s) becomes its
  // text (or nothing, when its text is that URL), an image from elsewhere its alt text.
  visit(html, 'element', (node: Element, index, parent) => {
    if (parent === undefined || index === undefined) return
    if (node.tagName === 'img' && !allowedImage(String(node.properties.src ?? ''), imageOrigins)) {
      const alt = String(node.properties.alt ?? '')
      parent.children.splice(index, 1, ...(alt === '' ? [] : [{ type: 'text' as const, value: alt }]))
      return [SKIP, index]
    }
    const href = String(node.properties.href ?? '')
    if (node.tagName === 'a' && webUrl(href) === undefined) {
      const text = node.children.map((child) => child.type === 'text' ? child.value : '').join('')
      parent.children.splice(index, 1, ...(text === href ? [] : node.children))
      return [SKIP, index]
    }
  })
  const clean = sanitize(html, SCHEMA) as HastRoot
  // GitHub's schema keeps <del>, <s> and tables, which become GFM nodes: serialise them as GFM.
  return toMarkdown(toMdast(clean), { bullet: '-', emphasis: '_', rule: '-', extensions: [gfmToMarkdown()] }).trim()
}

const HTML_COMMENT = /<!--[\s\S]*?(?:-->|$)/g
const HTML_TAG = /<\/?[a-z!][^>]*>/gi

/** Plain text for title, meta description, headings and alt text: no markup of any kind. */
export function safeText (text: string) {
  return text.replace(HTML_COMMENT, '').replace(HTML_TAG, '').replace(/[<>]/g, '').replace(/\s+/g, ' ').trim()
}

/** Every string in `value` without lone surrogates, which strict UTF-8 parsers reject. */
export function wellFormed<T> (value: T): T {
  if (typeof value === 'string') return value.toWellFormed() as T
  if (Array.isArray(value)) return value.map(wellFormed) as T
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, wellFormed(child)])) as T
  return value
}
