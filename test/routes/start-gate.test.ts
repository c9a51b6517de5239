import { test } from 'node:test'
import assert from 'node:assert/strict'
import { StartGate } from '../../src/routes/start-gate.ts'

// Callers arriving one per turn of the event loop, each before the gate looks in that turn, as
// requests read in the poll phase come before setImmediate callbacks.
function arriveEachTurn (gate: StartGate, log: string[], keepArriving: (count: number) => boolean) {
  return new Promise<void>((resolve) => {
    let count = 0
    const arrive = () => {
      if (!keepArriving(count)) return resolve()
      const n = count++
      log.push(`arrive ${n}`)
      gate.pass().then(() => log.push(`start ${n}`), () => {})
      setImmediate(arrive)
    }
    setImmediate(arrive)
  })
}

test('no pipeline starts while callers are still arriving; all start in the first turn that reads none', async () => {
  const gate = new StartGate(1_000)
  const log: string[] = []
  await arriveEachTurn(gate, log, (count) => count < 20)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const lastArrival = log.lastIndexOf('arrive 19')
  const firstStart = log.findIndex((entry) => entry.startsWith('start'))
  assert.ok(firstStart > lastArrival, `a pipeline started before the last caller arrived: ${log.join(', ')}`)
  assert.equal(log.filter((entry) => entry.startsWith('start')).length, 20)
})

test('a steady stream of arrivals holds a waiting pipeline no longer than the bound', async () => {
  const gate = new StartGate(10)
  const log: string[] = []
  const until = performance.now() + 200
  await arriveEachTurn(gate, log, () => performance.now() < until)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const arrivals = log.filter((entry) => entry.startsWith('arrive')).length
  const startsBeforeTheLastArrival = log.slice(0, log.lastIndexOf(`arrive ${arrivals - 1}`)).filter((entry) => entry.startsWith('start'))
  assert.ok(startsBeforeTheLastArrival.length > 0, `nothing started during ${arrivals} arrivals over 200 ms`)
  assert.equal(log.filter((entry) => entry.startsWith('start')).length, arrivals)
})
