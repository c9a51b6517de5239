import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { isPlainProse, safeMarkdown, safeText, sanitiseMarkdown } from '../../src/generation/safe-output.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

const ORIGINS = ['https://images.example']

test('safeMarkdown removes raw HTML and keeps only http(s) links and images from allowed origins', () => {
  const input = [
    '# Title', '', '<script>alert(1)</script>text after', '', '<img src=x onerror="alert(2)">', '',
    '[ok](https://example.com/a) [bad](javascript:alert(3)) [enc](jav&#x61;script:x) [ws]( java\tscript:x)', '',
    '[data](data:text/html,hi) <https://example.com/auto> <javascript:alert(5)>', '',
    '![mine](https://images.example/a.png) ![theirs](https://evil.example/p.png)', '',
    '[ref]: javascript:alert(6)', '', 'see [it][ref]', '', '<!-- comment --> a < b'
  ].join('\n')

  const output = safeMarkdown(input, ORIGINS)

  assert.doesNotMatch(output, /<script|<img|onerror|javascript:|jav&#x61;|data:text|evil\.example|<!--/i)
  assert.match(output, /\[ok\]\(https:\/\/example\.com\/a\)/)
  assert.match(output, /<https:\/\/example\.com\/auto>/)
  assert.match(output, /!\[mine\]\(https:\/\/images\.example\/a\.png\)/)
  assert.match(output, /text after/)
  assert.match(output, /bad enc/)
  assert.match(output, /see it/)
  assert.match(output, /a < b/, 'a lone < is text, not the start of a tag')
})

test('safeMarkdown keeps code as written: Array<string> in a code span and a code block is not escaped', () => {
  const input = 'Use `Array<string>` for lists.\n\n```ts\nconst names: Array<string> = [] // a < b && b > c\n```'
  const output = safeMarkdown(input, ORIGINS)
  assert.match(output, /`Array<string>`/)
  assert.match(output, /const names: Array<string> = \[\] \/\/ a < b && b > c/)
  assert.doesNotMatch(output, /&lt;|&gt;|&amp;/)
})

test('what the sanitiser returns is stable: sanitising it again changes nothing', () => {
  const input = '## A heading\n\nSome _emphasis_, **strong**, a [link](https://example.com) and `code`.\n\n- one\n- two\n\n> a quote'
  const once = safeMarkdown(input, ORIGINS)
  assert.equal(safeMarkdown(once, ORIGINS), once)
})

// The fast path returns plain prose as it is; the full pass must agree on every such text, or the
// fast path would serve something the sanitiser would have changed.
test('plain prose skips the Markdown round trip, and the full pass returns it unchanged: 20,000 generated lines, and every markup character sends a line the full way', () => {
  const characters = [...'aAzZéßøçЖжλΩ中文한글0189', ...' ,.;:\'"?!()%/’‘“”–—-', ...'*_[]<>&#|~\\`=+@\n\t']
  const line = fc.string({ unit: fc.constantFrom(...characters), minLength: 1, maxLength: 60 })
  let plain = 0
  fc.assert(fc.property(line, (text) => {
    if (!isPlainProse(text)) return
    plain++
    assert.equal(sanitiseMarkdown(text, ORIGINS), text)
  }), { numRuns: 20_000 })
  assert.ok(plain > 1_000, `${plain} of the generated lines were plain prose`)
  for (const markup of ['a *b*', 'a _b_', 'a [b](c)', 'a <b>', 'a &amp; b', 'a # b', 'a | b', 'a ~b~', 'a \\ b', 'a `b`', '1. a', '- a', 'a  b', 'see https://x.test', 'www.x.test', 'a\nb', 'a ']) {
    assert.equal(isPlainProse(markup), false, markup)
  }
  // The simulator's prose, as the pipeline sees it, takes the fast path.
  assert.equal(isPlainProse('Connection pooling keeps latency low: one Agent per process, created at start-up and closed at shutdown.'), true)
})

test('safeText leaves no markup in titles and alt text', () => {
  assert.equal(safeText('<b>Bold</b> <script>x()</script>title " onload="x()'), 'Bold x()title " onload="x()')
  assert.doesNotMatch(safeText('a <img src=x onerror=y> b'), /[<>]/)
})

test('hostile upstream output (script tags, javascript: links, foreign images) never reaches the caller', async (t) => {
  const { app } = await startStack(t, { simulator: { faults: { llm: { hostile: 'markup' } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 200)
  const post = response.json()
  const everything = JSON.stringify(post)
  assert.doesNotMatch(everything, /<script|<img|<b>|onerror|javascript:|jav&#x61;|data:text|evil\.example/i)
  assert.match(post.body, /\[a real link\]\(https:\/\/example\.com\/page\)/, 'ordinary links survive')
})

test('an answer that repeats the system prompt is refused, never passed on', async (t) => {
  const { app } = await startStack(t, { simulator: { faults: { llm: { hostile: 'echo', kind: 'section' } } } })

  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })

  assert.equal(response.statusCode, 502)
  assert.equal(response.json().error.code, 'upstream_bad_response')
  assert.doesNotMatch(response.body, /You (plan blog posts|write one section)/)
})

test('markup the sanitiser keeps as GFM (<s>, <del>, tables) is written back, never a failed post: the counterexample fast-check found', async (t) => {
  assert.equal(safeMarkdown('Treat <S>! as a concern.', ORIGINS), 'Treat ~~! as a concern.~~')
  assert.match(safeMarkdown('<table><tr><td>a</td></tr></table>', ORIGINS), /\| a \|/)
  const { app } = await startStack(t)
  const response = await app.inject({ method: 'POST', url: '/generate', payload: { topic: '! !', keywords: ['<S>!'] } })
  assert.equal(response.statusCode, 200)
})
