import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { once } from 'node:events'
import { test } from 'node:test'
import { startStack } from '../helper.ts'

test('request headers are capped (16 KiB): a larger header block is refused before any route runs', async (t) => {
  const { app, simulator } = await startStack(t)
  const origin = await app.listen({ port: 0, host: '127.0.0.1' })
  const socket = connect(Number(new URL(origin).port), '127.0.0.1')
  t.after(() => socket.destroy())
  let raw = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { raw += chunk })

  socket.write(`POST /generate HTTP/1.1\r\nhost: t\r\nx-padding: ${'a'.repeat(20 * 1024)}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`)
  await once(socket, 'close')

  assert.match(raw, /^HTTP\/1\.1 431 /)
  assert.equal(simulator.stats().requests.llm, 0)
})
