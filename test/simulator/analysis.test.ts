import assert from 'node:assert/strict'
import { test } from 'node:test'
import { writePlan, writeSection } from '../../src/simulator/content.ts'
import { extractEntities } from '../../src/simulator/keywords.ts'
import { analyzeSentiment } from '../../src/simulator/sentiment.ts'

test('the sentiment lexicon scores praise positive, complaints negative and plain facts neutral', () => {
  assert.ok(analyzeSentiment('This is a great, reliable and useful tool. I love it.').score >= 0.25)
  assert.ok(analyzeSentiment('This is a terrible, broken and frustrating tool. I hate it.').score <= -0.25)
  assert.equal(analyzeSentiment('The meeting is on Tuesday at noon.').score, 0)
})

test('negation flips a valence and intensifiers strengthen it', () => {
  assert.ok(analyzeSentiment('This is not good.').score < 0)
  assert.ok(analyzeSentiment('This is very good.').score > analyzeSentiment('This is good.').score)
})

test('magnitude adds up emotional content across sentences', () => {
  const one = analyzeSentiment('Great results.')
  const three = analyzeSentiment('Great results. Terrible bugs. Wonderful team.')
  assert.ok(three.magnitude > one.magnitude)
  assert.equal(three.sentences.length, 3)
})

test('RAKE ranks the repeated multi-word phrase first and drops stop words', () => {
  const entities = extractEntities('Connection pooling is cheap. Without connection pooling, every call opens sockets. Connection pooling is the fix.')
  assert.equal(entities[0]?.name.toLowerCase(), 'connection pooling')
  assert.equal(entities[0]?.mentions, 3)
  assert.ok(entities.every((entity) => !/^(the|is|every|without)$/i.test(entity.name)))
  const total = entities.reduce((sum, entity) => sum + entity.salience, 0)
  assert.ok(Math.abs(total - 1) < 0.01, `saliences sum to 1, got ${total}`)
})

test('plans and sections are deterministic, built from the topic, and as long as the prompt asks', () => {
  const brief = { topic: 'sourdough baking', tone: 'casual' }
  assert.deepEqual(writePlan({ ...brief, sections: 3 }), writePlan({ ...brief, sections: 3 }))
  assert.match(writePlan({ ...brief, sections: 3 }).title, /^Sourdough baking/)
  for (const sections of [2, 4, 6]) assert.equal(writePlan({ ...brief, sections }).sections.length, sections)
  for (const words of [100, 300, 600]) {
    const written = writeSection({ brief, heading: 'Why it matters', words }).split(/\s+/).length
    assert.ok(Math.abs(written - words) <= 0.25 * words, `${written} words for ${words} asked`)
    assert.doesNotMatch(writeSection({ brief, words }), /^#/m, 'no heading: it comes from the plan')
  }
})
