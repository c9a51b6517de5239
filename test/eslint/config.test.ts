import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ESLint } from 'eslint'

const CODE = "import { Agent } from 'undici'\nexport const agent = new Agent()\n"

async function ruleIds (filePath: string) {
  const [result] = await new ESLint().lintText(CODE, { filePath })
  return (result?.messages ?? []).map((message) => message.ruleId)
}

test('the project config guards src/ with the rule, and exempts only the upstream-pool plugin', async () => {
  assert.deepEqual(await ruleIds('src/providers/new-provider.ts'), ['content-engine/one-http-client'])
  assert.deepEqual(await ruleIds('src/plugins/upstream-pool.ts'), [])
})

test('the project config allows a Redis client only in the redis plugin', async () => {
  const code = "import { Redis } from 'ioredis'\nexport const redis = new Redis()\n"
  const ids = async (filePath: string) => ((await new ESLint().lintText(code, { filePath }))[0]?.messages ?? []).map((message) => message.ruleId)
  assert.deepEqual(await ids('src/idempotency/store.ts'), ['content-engine/one-redis-client'])
  assert.deepEqual(await ids('src/plugins/redis.ts'), [])
})
