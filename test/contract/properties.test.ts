import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { startStack } from '../helper.ts'
import { loadContract } from './contract.ts'

type Schema = Record<string, any>
const contract = loadContract()
const brief = contract.document.components.schemas.Brief as Schema

// JSON Schema counts characters as code points, as the service does.
const characters = (value: string) => [...value].length

/** Values the document says are valid for `schema` (the subset of JSON Schema the Brief uses). */
function valid (schema: Schema): fc.Arbitrary<unknown> {
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum as unknown[])
  switch (schema.type) {
    case 'boolean': return fc.boolean()
    case 'string': {
      const text = schema.pattern === undefined ? fc.string({ unit: 'grapheme' }) : fc.stringMatching(new RegExp(schema.pattern, 'u'))
      return text.filter((value) => characters(value) <= (schema.maxLength ?? Infinity))
    }
    case 'array': return fc.array(valid(schema.items), { maxLength: schema.maxItems })
    case 'object': return fc.record(Object.fromEntries(Object.entries(schema.properties as Schema).map(([key, child]) => [key, valid(child)])), { requiredKeys: schema.required })
    default: throw new Error(`no generator for ${JSON.stringify(schema)}`)
  }
}

/** A valid body with one field broken as the document forbids, and that field's name. */
function invalid (): fc.Arbitrary<{ body: Record<string, unknown>, field: string }> {
  const properties = brief.properties as Schema
  const breakField = fc.constantFrom(...Object.keys(properties)).chain((field) => {
    const schema = properties[field] as Schema
    const wrongs: Array<fc.Arbitrary<unknown>> = [fc.constant(null), fc.integer(), fc.constant({})]
    if (schema.type === 'string' && schema.maxLength !== undefined) wrongs.push(fc.constant('a'.repeat(schema.maxLength + 1)))
    if (schema.enum !== undefined) wrongs.push(fc.string().filter((value) => !schema.enum.includes(value)))
    if (schema.pattern !== undefined) wrongs.push(fc.string({ maxLength: 20 }).filter((value) => !new RegExp(schema.pattern, 'u').test(value)))
    if (schema.type === 'array') wrongs.push(fc.array(fc.constant('k'), { minLength: schema.maxItems + 1, maxLength: schema.maxItems + 3 }))
    return fc.oneof(...wrongs).map((value) => ({ field, value }))
  })
  return fc.tuple(valid(brief) as fc.Arbitrary<Record<string, unknown>>, breakField, fc.boolean()).map(([body, { field, value }, unknownKey]) =>
    unknownKey ? { body: { ...body, surplus: 1 }, field: '' } : { body: { ...body, [field]: value }, field })
}

test('1,000 requests generated from the document\'s own Brief schema: none refused, none 5xx, every answer as documented', async (t) => {
  const { app } = await startStack(t, { env: { MAX_CONCURRENT_REQUESTS: '1000' } })
  const statuses: Record<number, number> = {}
  await fc.assert(fc.asyncProperty(valid(brief), async (body) => {
    const response = await app.inject({ method: 'POST', url: '/generate', payload: body as object })
    statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1
    assert.equal(response.statusCode, 200, `${JSON.stringify(body).slice(0, 300)} → ${response.body.slice(0, 300)}`)
    assert.deepEqual(contract.check({ method: 'POST', path: '/generate', status: response.statusCode, headers: response.headers as never, body: response.body }), [])
  }), { numRuns: 1_000 })
  t.diagnostic(JSON.stringify(statuses))
})

test('1,000 requests that break one rule of the document: each a 400 whose details name the field', async (t) => {
  const { app, simulator } = await startStack(t)
  await fc.assert(fc.asyncProperty(invalid(), async ({ body, field }) => {
    const response = await app.inject({ method: 'POST', url: '/generate', payload: body })
    assert.equal(response.statusCode, 400, JSON.stringify(body).slice(0, 300))
    const { error } = response.json() as { error: { code: string, details: Array<{ path: string }> } }
    assert.equal(error.code, 'invalid_request')
    const paths = error.details.map((detail) => detail.path)
    assert.ok(paths.some((path) => path === `body.${field}` || path.startsWith(`body.${field}.`) || (field === '' && path === 'body')), `${field}: ${paths.join(', ')}`)
  }), { numRuns: 1_000 })
  assert.equal(Object.values(simulator.stats().requests).reduce((sum, count) => sum + count, 0), 0, 'no invalid request reached an upstream')
})
