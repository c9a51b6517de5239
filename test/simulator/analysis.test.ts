import assert from 'node:assert/strict'
import { test } from 'node:test'
import { writeDraft } from '../../src/simulator/content.ts'
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

test('drafts are deterministic, built from the topic, and grow with length', () => {
  const brief = { topic: 'sourdough baking', tone: 'casual', sections: 2 }
  assert.equal(writeDraft(brief), writeDraft(brief))
  assert.match(writeDraft(brief), /^# Sourdough baking/)
  const paragraphs = (sections: number) => writeDraft({ ...brief, sections }).split('\n\n').filter((block) => !block.startsWith('#')).length
  assert.ok(paragraphs(2) < paragraphs(4) && paragraphs(4) < paragraphs(6))
})
