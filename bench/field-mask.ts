// node bench/field-mask.ts [--words 1200]: what X-Goog-FieldMask saves on the Natural Language
// answers for a long post. Starts the simulator in this process on 127.0.0.1, sends it the body of
// a post of about --words words (four sections, written by the simulator's own writer), with and
// without the masks providers/language.ts sends, and prints the bytes of each answer and what
// JSON.parse of both costs. The simulator is closed at the end.
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { writeSection } from '../src/simulator/content.ts'
import { startSimulator } from '../src/simulator/server.ts'

const { values } = parseArgs({ options: { words: { type: 'string', default: '1200' } } })
const sections = 4
const brief = { topic: 'Connection pools in Node services', audience: 'engineers', tone: 'practical' }
const body = Array.from({ length: sections }, (_, index) =>
  `## Part ${index + 1}\n\n${writeSection({ brief, index, heading: `Part ${index + 1}`, words: Number(values.words) / sections })}`).join('\n\n')
const document = JSON.stringify({ document: { type: 'PLAIN_TEXT', content: body }, encodingType: 'UTF8' })

const masks = { analyzeSentiment: 'documentSentiment', analyzeEntities: 'entities.name,entities.salience' }
const simulator = await startSimulator()
try {
  const answer = async (method: keyof typeof masks, masked: boolean) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-goog-api-key': 'bench' }
    if (masked) headers['x-goog-fieldmask'] = masks[method]
    const { statusCode, body: response } = await request(`${simulator.origin}/v1/documents:${method}`, { method: 'POST', headers, body: document })
    const text = await response.text()
    if (statusCode !== 200) throw new Error(`${method}: ${statusCode} ${text}`)
    return text
  }
  console.log(`a post of ${body.split(/\s+/).length} words, ${Buffer.byteLength(body)} bytes`)
  console.log('answer        analyzeSentiment  analyzeEntities  JSON.parse of both')
  for (const masked of [false, true]) {
    const texts = [await answer('analyzeSentiment', masked), await answer('analyzeEntities', masked)] as const
    const rounds = 2_000
    let us = 0
    for (let warm = 0; warm < 2; warm++) {
      const started = process.hrtime.bigint()
      for (let round = 0; round < rounds; round++) for (const text of texts) JSON.parse(text)
      us = Number(process.hrtime.bigint() - started) / rounds / 1_000
    }
    const bytes = texts.map((text) => `${Buffer.byteLength(text)} B`.padStart(9))
    console.log(`${masked ? 'masked' : 'whole '}        ${bytes[0]}         ${bytes[1]}        ${us.toFixed(1)} µs`)
  }
} finally {
  await simulator.close()
}
