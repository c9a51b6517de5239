// The body, assembled as the sections are written: each section's text is cut into Markdown blocks
// as they complete (never inside a code fence), each block sanitised on its own, and the blocks
// released in reading order. JSON and streamed answers are built by the same code, so the deltas a
// streaming caller appends are, byte for byte, the body of the result.
import { ServiceError } from '../errors.ts'
import { echoesInstructions } from './prompts.ts'
import { safeMarkdown, safeText } from './safe-output.ts'

const words = (text: string) => text.split(/\s+/).filter(Boolean).length

// A block the Markdown round trip cannot handle is served as its plain text rather than failing the
// post (an error here, inside a stream's reader, would also pass for the upstream's fault).
function sanitised (block: string, imageOrigins: readonly string[]) {
  try {
    return safeMarkdown(block, imageOrigins)
  } catch {
    return safeText(block).replace(/([\\`*_[\]#!|~])/g, '\\$1')
  }
}

export type Trim = 'section_truncated' | 'section_trimmed'

export interface Release {
  /** Text in reading order, as soon as every section before it is complete. */
  (section: number, text: string): void
}

/**
 * Hands out sections' text in reading order. `live`: the current section's text goes out as it is
 * written, later ones are held until their turn (a streaming caller). Otherwise each section goes
 * out whole once complete, so a section retried after a failure never leaves half of itself behind.
 */
export function createReadingOrder (headings: readonly string[], release: Release, live = true) {
  const held = headings.map(() => [] as string[])
  const done = headings.map(() => false)
  const released = headings.map(() => false)
  let current = 0
  const flush = () => {
    while (current < headings.length) {
      if (live || done[current]) {
        for (const text of held[current]!.splice(0)) {
          released[current] = true
          release(current, text)
        }
      }
      if (!done[current]) return
      current++
    }
  }
  return {
    /** Whether any of `section`'s text has been released. */
    released: (section: number) => released[section] === true,
    /** Drops what `section` holds, for a retried call. */
    discard (section: number) {
      held[section] = []
    },
    emit (section: number, text: string) {
      held[section]!.push(text)
      if (section === current) flush()
    },
    finish (section: number) {
      done[section] = true
      flush()
    }
  }
}

export type ReadingOrder = ReturnType<typeof createReadingOrder>

/**
 * One section: its heading from the plan, then its blocks. A heading the model wrote anyway is
 * dropped; past 1.5 times the words asked for, whole blocks are dropped (section_trimmed); a last
 * block cut off by the token limit ends at its last full sentence (section_truncated).
 */
export function createSection (index: number, heading: string, wordsAsked: number, imageOrigins: readonly string[], order: ReadingOrder) {
  let pending = ''
  let blocks = 0
  let written = 0
  let trimmed: Trim | undefined
  let failure: ServiceError | undefined
  let headed = false

  function add (block: string) {
    if (failure !== undefined || trimmed === 'section_trimmed') return
    const raw = block.trim()
    if (raw === '' || (blocks === 0 && written === 0 && /^#{1,6}[ \t]/.test(raw) && !raw.includes('\n'))) return
    if (written > 0 && written + words(raw) > 1.5 * wordsAsked) {
      trimmed = 'section_trimmed'
      return
    }
    if (echoesInstructions(raw)) {
      failure = new ServiceError('upstream_bad_response', { message: 'The LLM answer repeated its instructions.', details: { upstream: 'llm' } })
      return
    }
    const safe = sanitised(raw, imageOrigins)
    if (safe === '') return
    start()
    const prefix = '\n\n'
    blocks++
    written += words(raw)
    order.emit(index, prefix + safe)
  }

  /** Complete blocks end at a blank line outside a code fence. */
  function takeBlocks () {
    for (;;) {
      let fenced = false
      let at = -1
      for (const match of pending.matchAll(/^(`{3,}|~{3,})|\n\n/gm)) {
        if (match[0] !== '\n\n') fenced = !fenced
        else if (!fenced) { at = match.index; break }
      }
      if (at < 0) return
      add(pending.slice(0, at))
      pending = pending.slice(at + 2)
    }
  }

  // The heading goes out with the section's first token: the caller sees the section start at once,
  // though its first paragraph takes a second or two to complete.
  function start () {
    if (blocks > 0 || headed) return
    headed = true
    order.emit(index, `${index === 0 ? '' : '\n\n'}## ${heading.replace(/\s+/g, ' ')}`)
  }

  return {
    push (text: string) {
      start()
      pending += text
      // A block ends at a blank line: a chunk without a line break cannot complete one, and most
      // chunks are a token or two. (Scanning on every chunk made the scan quadratic in the block.)
      if (text.includes('\n')) takeBlocks()
    },
    /** Whether any of this section's text has reached the caller: a failure after it cannot be retried. */
    committed: () => order.released(index),
    /** Starts the section again for a retried call: nothing of it has reached the caller. */
    reset () {
      if (order.released(index)) throw new Error('a section that has reached the caller cannot restart')
      order.discard(index)
      pending = ''
      blocks = 0
      written = 0
      trimmed = undefined
      failure = undefined
      headed = false
    },
    finish (finishReason: string) {
      let last = pending
      pending = ''
      if (finishReason === 'length') {
        const stop = Math.max(...['. ', '! ', '? ', '.\n', '!\n', '?\n'].map((mark) => last.lastIndexOf(mark) + 1))
        if (!/[.!?]["')\]]*\s*$/.test(last)) last = stop > 0 ? last.slice(0, stop) : ''
        trimmed ??= 'section_truncated'
      }
      add(last)
      if (failure !== undefined) throw failure
      if (blocks === 0) throw new ServiceError('upstream_bad_response', { message: `Section ${index + 1} came back empty.`, details: { upstream: 'llm' } })
      order.finish(index)
      return trimmed
    }
  }
}
