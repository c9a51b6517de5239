import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cleanSection, fitField } from '../../src/generation/sections.ts'
import { wellFormed } from '../../src/generation/safe-output.ts'
import { GOOD_BRIEF, startStack } from '../helper.ts'

test('a section cut off by the token limit ends at its last full sentence; a runaway one at a paragraph; a heading it added is dropped', () => {
  const cut = cleanSection('## My own heading\n\nFirst sentence here. Second one is cut mid-wo', 'length', 100)
  assert.deepEqual(cut, { text: 'First sentence here.', trimmed: 'section_truncated' })
  const paragraph = Array(60).fill('word').join(' ')
  const runaway = cleanSection(Array(6).fill(paragraph).join('\n\n'), 'stop', 100)
  assert.equal(runaway.trimmed, 'section_trimmed')
  assert.ok(runaway.text.split(/\s+/).length <= 150)
  assert.deepEqual(cleanSection('Just right.', 'stop', 100), { text: 'Just right.' })
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
