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
