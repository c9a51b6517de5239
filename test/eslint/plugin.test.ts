import { describe, it } from 'node:test'
import { RuleTester } from 'eslint'
import tseslint from 'typescript-eslint'
import { consumeResponseBody, oneHttpClient, oneRedisClient } from '../../eslint/plugin.ts'

// RuleTester registers its cases with whatever describe/it it is given: node:test's here.
RuleTester.describe = describe
RuleTester.it = it
RuleTester.itOnly = it.only

const tester = new RuleTester({ languageOptions: { parser: tseslint.parser, ecmaVersion: 2024, sourceType: 'module' } })

tester.run('one-http-client', oneHttpClient, {
  valid: [
    "import type { Dispatcher } from 'undici'\nexport async function call (d: Dispatcher) { const r = await d.request({ origin: 'http://a', path: '/', method: 'GET' }); await r.body.dump() }",
    "import { request } from 'undici'\nawait request('http://a', { dispatcher: app.upstream })",
    "import { request } from 'undici'\nawait request('http://a', { ...options })",
    "import { Agent } from 'node:http'\nnew Agent()",
    'class Client {}\nnew Client()',
    'function fetch () {}\nfetch()',
    "import { MockAgent } from 'undici'\nconst mock = new MockAgent()"
  ],
  invalid: [
    { code: "import { Agent } from 'undici'\nnew Agent({ connections: 1 })", errors: [{ messageId: 'newClient' }] },
    { code: "import { Pool as P, Client } from 'undici'\nnew P('http://a'); new Client('http://a')", errors: [{ messageId: 'newClient' }, { messageId: 'newClient' }] },
    { code: "import * as undici from 'undici'\nnew undici.RetryAgent(x); new undici.BalancedPool([])", errors: [{ messageId: 'newClient' }, { messageId: 'newClient' }] },
    { code: "import { ProxyAgent } from 'undici'\nexport const make = () => new ProxyAgent('http://proxy')", errors: [{ messageId: 'newClient' }] },
    { code: "await fetch('http://a')", errors: [{ messageId: 'globalFetch' }] },
    { code: "await globalThis.fetch('http://a')", errors: [{ messageId: 'globalFetch' }] },
    { code: "import { request } from 'undici'\nawait request('http://a')", errors: [{ messageId: 'missingDispatcher' }] },
    { code: "import { fetch } from 'undici'\nawait fetch('http://a', { method: 'POST' })", errors: [{ messageId: 'missingDispatcher' }] },
    { code: "import { setGlobalDispatcher, Agent } from 'undici'\nsetGlobalDispatcher(agent)", errors: [{ messageId: 'globalDispatcher' }] }
  ]
})

tester.run('one-redis-client', oneRedisClient, {
  valid: [
    "import type { Redis } from 'ioredis'\nexport const ping = (redis: Redis) => redis.ping()",
    'class Redis {}\nnew Redis()',
    "import { createClient } from './mine.ts'\ncreateClient()"
  ],
  invalid: [
    { code: "import { Redis } from 'ioredis'\nnew Redis('redis://a')", errors: [{ messageId: 'newClient' }] },
    { code: "import IORedis from 'ioredis'\nexport const make = () => new IORedis()", errors: [{ messageId: 'newClient' }] },
    { code: "import { Cluster } from 'ioredis'\nnew Cluster([])", errors: [{ messageId: 'newClient' }] },
    { code: "import * as valkey from 'iovalkey'\nnew valkey.Redis()", errors: [{ messageId: 'newClient' }] },
    { code: "import { createClient } from 'redis'\ncreateClient({ url: 'redis://a' })", errors: [{ messageId: 'newClient' }] }
  ]
})

tester.run('consume-response-body', consumeResponseBody, {
  valid: [
    'async function f (d) { const { statusCode, body } = await d.request(o); if (statusCode > 299) { await body.dump(); return } return body.json() }',
    'async function f (d) { const response = await d.request(o); return response.body.text() }',
    'async function f (d) { const response = await d.request(o); return response }',
    'async function f (d) { let response; response = await d.request(o); const { body } = response; for await (const chunk of body) use(chunk) }',
    'async function f (d) { const { body } = await d.request(o); await readBounded(body, 10) }',
    'async function f (d) { const { body, ...rest } = await d.request(o); keep(rest) }'
  ],
  invalid: [
    { code: 'async function f (d) { const { statusCode } = await d.request(o); return statusCode }', errors: [{ messageId: 'unconsumed' }] },
    { code: 'async function f (d) { const { statusCode, body } = await d.request(o); return statusCode }', errors: [{ messageId: 'unconsumed' }] },
    { code: 'async function f (d) { const response = await d.request(o); return response.statusCode }', errors: [{ messageId: 'unconsumed' }] },
    { code: 'async function f (d) { await d.request(o) }', errors: [{ messageId: 'unconsumed' }] },
    { code: "import { request } from 'undici'\nasync function f () { const { headers } = await request(url, { dispatcher }); return headers }", errors: [{ messageId: 'unconsumed' }] }
  ]
})
