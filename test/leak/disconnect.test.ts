import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startSimulator } from '../../src/simulator/server.ts'
import { drive, LIMITS, startVariant } from './guard.ts'

const ABANDONED = 300

test(`${ABANDONED} requests abandoned mid-flight abort their upstream calls and leave no sockets, timers or listeners behind`, async (t) => {
  // Every upstream call takes 2 s, so a call still running 1.5 s after the callers left is one that
  // was not aborted. (Not 300 ms: Node can report a client's closed socket a few hundred ms late
  // under this load, and until then a queued call of that request may still get its slot.)
  const slow = { fixedMs: 2_000, jitterMs: 0 }
  const simulator = await startSimulator({ keepAliveTimeoutMs: 60_000, latency: { llm: slow, image: slow, sentiment: slow, entities: slow } })
  t.after(() => simulator.close())
  const service = await startVariant(t, 'service', simulator)
  const baseline = await service.measure()

  const statuses = await drive(service.origin, ABANDONED, 50, { abortAfterMs: () => 20 + Math.random() * 80 })
  assert.deepEqual(statuses, { aborted: ABANDONED })

  for (let waited = 0; waited < 1_500 && simulator.stats().inFlight > 0; waited += 50) await sleep(50)
  const { inFlight, requests } = simulator.stats()
  // The image and the plan start together and share 16 connections: between them, most requests
  // had an upstream call running when their caller left.
  assert.ok(requests.llm + requests.image > ABANDONED / 2, `upstream calls reached before the callers left: ${requests.llm} plan, ${requests.image} image`)
  assert.equal(inFlight, 0, `no upstream call outlived its caller: ${JSON.stringify(simulator.calls.filter((call) => call.endedAt === undefined).map((call) => [call.endpoint, call.kind, Math.round(performance.now() - call.startedAt)]))}`)
  assert.ok(simulator.calls.every((call) => call.aborted), 'every upstream call was cut off, none answered')

  await sleep(LIMITS.keepAliveMs + 500)
  const after = await service.measure()
  t.diagnostic(JSON.stringify({ baseline: { fds: baseline.fds, resources: baseline.resources }, after: { fds: after.fds, resources: after.resources } }))
  assert.ok(after.fds <= baseline.fds + LIMITS.fdSlack, `fds ${after.fds}, baseline ${baseline.fds}`)
  assert.equal(after.resources.TCPSocketWrap ?? 0, baseline.resources.TCPSocketWrap ?? 0, 'sockets')
  assert.ok((after.resources.Timeout ?? 0) <= (baseline.resources.Timeout ?? 0), 'timers')
  assert.deepEqual(after.warnings, [], 'no MaxListenersExceededWarning or any other warning')
  assert.ok(after.heapUsed < baseline.heapUsed + 4 * 1024 * 1024, 'heap')
  await service.close()
  assert.equal(simulator.stats().connections.open, 0)
})
