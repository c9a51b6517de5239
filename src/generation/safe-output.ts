// What an LLM writes is untrusted: a post may be rendered as HTML on someone's site, so it leaves
// here with no raw HTML, links only to http(s), and images only from origins we configured.
const HTML_TAG = /<\/?[a-z!][^>]*>/gi
const HTML_COMMENT = /<!--[\s\S]*?(?:-->|$)/g
// A destination may hold one level of balanced parentheses: javascript:alert(1) must be seen whole.
const DESTINATION = String.raw`\(\s*<?((?:[^()\s>]|\([^()\s]*\))*)>?(?:\s+"[^"]*")?\s*\)`
const IMAGE = new RegExp(String.raw`!\[([^\]]*)\]` + DESTINATION, 'g')
const LINK = new RegExp(String.raw`\[([^\]]*)\]` + DESTINATION, 'g')
const REFERENCE = /^ {0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$/gm
const AUTOLINK = /<([a-z][a-z0-9+.-]*:[^>\s]*)>/gi

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

const isWebUrl = (url: string) => webUrl(url) !== undefined

export function allowedImage (url: string, imageOrigins: readonly string[]) {
  const parsed = webUrl(url)
  return parsed !== undefined && imageOrigins.includes(parsed.origin)
}

/** Markdown safe to render: tags removed (their text kept), unsafe links reduced to their text. */
export function safeMarkdown (markdown: string, imageOrigins: readonly string[]) {
  return markdown
    .replace(HTML_COMMENT, '')
    // Autolinks become ordinary links first, so the tag stripping cannot take them for tags.
    .replace(AUTOLINK, (_, url: string) => isWebUrl(url) ? `[${url}](${url})` : '')
    // Tags go before links are judged: a tag inside a destination could otherwise hide it.
    .replace(HTML_TAG, '')
    .replace(IMAGE, (whole, alt: string, url: string) => allowedImage(url, imageOrigins) ? whole : alt)
    .replace(LINK, (whole, text: string, url: string) => isWebUrl(url) ? whole : text)
    .replace(REFERENCE, (whole, url: string) => isWebUrl(url) ? whole : '')
    // What is left of a broken tag must not start one when the post is rendered.
    .replace(/</g, '&lt;')
}

/** Plain text for title, meta description and alt text: no markup of any kind. */
export function safeText (text: string) {
  return text.replace(HTML_COMMENT, '').replace(HTML_TAG, '').replace(/[<>]/g, '').replace(/\s+/g, ' ').trim()
}
