import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

// sdk-node pins the SDK packages it builds on to exact versions. src/telemetry/sdk.ts hands it
// objects made from our own imports (span processors, samplers, the context manager, view enums)
// and the tests hand it an in-memory exporter: if npm installs a second copy for either side, those
// objects cross copies, and every copy is loaded, kept in memory and shipped in the image. So
// package.json pins these packages to the versions sdk-node asks for.
const SHARED = ['@opentelemetry/sdk-metrics', '@opentelemetry/sdk-trace', '@opentelemetry/resources', '@opentelemetry/core', '@opentelemetry/context-async-hooks']

test('the SDK packages we import are the copies sdk-node uses', () => {
  const ours = createRequire(import.meta.url)
  const sdkNode = createRequire(ours.resolve('@opentelemetry/sdk-node'))
  for (const name of SHARED) {
    assert.equal(sdkNode.resolve(name), ours.resolve(name), `${name}: sdk-node loads another copy; align its version in package.json with sdk-node's`)
  }
})
