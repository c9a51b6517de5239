import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createReadingOrder, createSection } from '../../src/generation/assembly.ts'
import { fitField } from '../../src/generation/sections.ts'
import { wellFormed } from '../../src/generation/safe-output.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

function section (wordsAsked: number) {
  const released: string[] = []
  const order = createReadingOrder(['Heading'], (_, text) => released.push(text))
  return { writer: createSection(0, 'Heading', wordsAsked, [], order), text: () => released.join('') }
}

test('a section cut off by the token limit ends at its last full sentence; a runaway one at a block; a heading it added is dropped', () => {
  const cut = section(100)
  cut.writer.push('## My own heading\n\nFirst sentence here. Second one is cut mid-wo')
  assert.equal(cut.writer.finish('length'), 'section_truncated')
  assert.equal(cut.text(), '## Heading\n\nFirst sentence here.')

  const runaway = section(100)
  runaway.writer.push(Array(6).fill(Array(60).fill('word').join(' ')).join('\n\n'))
  assert.equal(runaway.writer.finish('stop'), 'section_trimmed')
  assert.ok(runaway.text().split(/\s+/).length <= 155)

  const fine = section(100)
  fine.writer.push('Just right.')
  assert.equal(fine.writer.finish('stop'), undefined)
  assert.equal(fine.text(), '## Heading\n\nJust right.')
})

test('sections come out in reading order: the first live, later ones held until their turn, blocks never split inside a code fence', () => {
  const released: Array<[number, string]> = []
  const order = createReadingOrder(['One', 'Two'], (index, text) => released.push([index, text]))
  const [one, two] = [createSection(0, 'One', 100, [], order), createSection(1, 'Two', 100, [], order)]
  two.push('Second section, written first.\n\n')
  assert.equal(released.length, 0, 'section 2, heading and all, waits for section 1')
  one.push('Opening.\n\n```ts\nconst a = 1\n\nconst b = 2\n```\n\nMore')
  assert.deepEqual(released.map(([, text]) => text.replace(/^\n\n/, '').slice(0, 10)), ['## One', 'Opening.', '```ts\ncons'], 'the heading at the first token, then whole blocks')
  assert.match(released[2]![1], /const a = 1\n\nconst b = 2/, 'the fence is one block')
  one.finish('stop')
  assert.deepEqual(released.map(([index]) => index), [0, 0, 0, 0, 1, 1], 'section 2 follows as soon as section 1 is complete')
  two.finish('stop')
  assert.equal(released.map(([, text]) => text).join(''), '## One\n\nOpening.\n\n```ts\nconst a = 1\n\nconst b = 2\n```\n\nMore\n\n## Two\n\nSecond section, written first.')
})

test('an over-long field is cut at a word, never inside a character, with an ellipsis', () => {
  assert.deepEqual(fitField('short title', 100), { value: 'short title', trimmed: false })
  const long = fitField('A title about connection pooling in Node.js that goes on and on well past the limit', 40)
  assert.ok(long.trimmed && [...long.value].length <= 40, long.value)
  assert.match(long.value, /^A title about connection pooling in…$/)
  const emoji = fitField('🍞'.repeat(50), 10)
  assert.equal(emoji.value, `${'🍞'.repeat(9)}…`)
  assert.equal(emoji.value, emoji.value.toWellFormed())
})

test('no string leaves with a lone surrogate', () => {
  const broken = { title: 'Bread \ud83c', nested: [{ alt: '\udf5e crumbs' }], n: 1 }
  assert.deepEqual(wellFormed(broken), { title: 'Bread \ufffd', nested: [{ alt: '\ufffd crumbs' }], n: 1 })
})

test('a topic of 480 characters gets a post: the long alt text and title are trimmed with warnings, not a 502', async (t) => {
  const { app } = await startStack(t)
  const topic = `how ${'very '.repeat(90)}long topics are handled`.slice(0, 480)
  const response = await app.inject({ method: 'POST', url: '/generate', payload: { ...GOOD_BRIEF, topic } })
  assert.equal(response.statusCode, 200)
  const post = response.json()
  assert.ok([...post.title].length <= 100 && [...post.image.alt].length <= 250 && [...post.metaDescription].length <= 200)
  assert.ok(post.warnings.some((warning: { code: string }) => warning.code === 'field_trimmed'))
})

test('a section stopped at the token limit is served, ending at a sentence, with a section_truncated warning', async (t) => {
  const { app } = await startStack(t, { simulator: { faults: { llm: { finishLength: true, kind: 'section' } } } })
  const response = await app.inject({ method: 'POST', url: '/generate', payload: GOOD_BRIEF })
  assert.equal(response.statusCode, 200)
  const post = response.json()
  assert.equal(post.warnings.filter((warning: { code: string }) => warning.code === 'section_truncated').length, 4)
  for (const section of post.body.split(/^## .*$/m).slice(1)) assert.match(section.trim(), /[.!?]$/)
})
