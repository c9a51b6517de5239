import type {} from '@fastify/sse'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { isServiceError, catalogue, errorLogFields, type ErrorBody } from '../errors.ts'
import type { PostEvents } from '../generation/pipeline.ts'
import { logCallerGone } from '../plugins/access-log.ts'
import { CallerGone } from '../plugins/in-flight.ts'
import type { StartGate } from './start-gate.ts'
import { streamFirstDelta, streamFirstEvent, streamsEnded } from '../telemetry/instruments.ts'

export interface StreamOptions {
  /** A comment line after this long without an event, so proxies keep the connection. */
  heartbeatMs: number
  /** Most a slow reader may leave unread before its stream is cut off. */
  maxBufferedBytes: number
}

export type StreamEnding = 'result' | 'error' | 'client_gone'

declare module 'fastify' {
  interface FastifyReply {
    /** How a streamed answer ended, for its access line. */
    streamEnding?: StreamEnding
  }
}

/**
 * A post as Server-Sent Events (@fastify/sse writes them): accepted at once, then plan, deltas in
 * reading order, image, analysis and warnings as they happen, and last exactly one result or error.
 * Events wait in a queue while the socket is full; past `maxBufferedBytes` the reader is too slow
 * to keep, and the connection is closed, which aborts the pipeline as a caller leaving does.
 */
export async function streamPost (request: FastifyRequest, reply: FastifyReply, options: StreamOptions, postId: string, run: (events: PostEvents) => Promise<unknown>, startGate: StartGate) {
  const sse = reply.sse
  // Each event is written after the one before it: a chain of writes, each waiting for the socket.
  let tail: Promise<void> = Promise.resolve()
  let queuedBytes = 0
  let nextId = 0
  let firstDelta = true
  let heartbeat: NodeJS.Timeout | undefined

  const armHeartbeat = () => {
    clearTimeout(heartbeat)
    heartbeat = setTimeout(() => {
      if (sse.isConnected) reply.raw.write(': keep-alive\n\n')
      armHeartbeat()
    }, options.heartbeatMs)
  }

  function send (event: string, value: unknown) {
    if (!sse.isConnected) return tail
    const data = JSON.stringify(value)
    const id = String(nextId++)
    queuedBytes += data.length
    if (queuedBytes > options.maxBufferedBytes) {
      request.log.warn({ queuedBytes }, 'the caller reads the stream too slowly; closing it')
      reply.raw.destroy()
      return tail
    }
    armHeartbeat()
    // A failed write means the connection is gone; the next ones then see isConnected false.
    tail = tail.then(async () => {
      if (sse.isConnected) await sse.send({ id, event, data })
      queuedBytes -= data.length
    }).catch(() => {})
    return tail
  }

  const events: PostEvents = {
    plan: (plan) => { send('plan', plan) },
    delta: (section, text) => {
      if (firstDelta) {
        firstDelta = false
        streamFirstDelta.record(reply.elapsedTime / 1000)
      }
      send('delta', { section, text })
    },
    image: (image) => { send('image', image) },
    analysis: (analysis) => { send('analysis', analysis) },
    warning: (warning) => { send('warning', warning) }
  }

  let ending: StreamEnding = 'error'
  // Events are small writes that must leave at once: without this, Nagle's algorithm holds one
  // back until the caller acknowledges the last, which a delayed ACK stretches to ~40 ms.
  request.raw.socket?.setNoDelay(true)
  // The headers go out with the first event, not through onSend: the service's time until then.
  reply.header('server-timing', `app;dur=${reply.elapsedTime.toFixed(1)}`)
  try {
    const accepted = send('accepted', { id: postId, requestId: request.id })
      .then(() => { streamFirstEvent.record(reply.elapsedTime / 1000) })
    // In a burst, every caller is read and accepted before any pipeline starts its upstream calls.
    await startGate.pass()
    await accepted
    const post = await run(events)
    await send('result', post)
    ending = 'result'
  } catch (error) {
    if (error instanceof CallerGone || !sse.isConnected) {
      ending = 'client_gone'
    } else {
      if (!isServiceError(error)) request.log.error({ err: error }, 'unhandled error in a stream')
      else request.log.warn(errorLogFields(error), error.message)
      await send('error', errorEvent(error, request.id))
    }
  } finally {
    clearTimeout(heartbeat)
    // A write still waiting for a reader that is gone would wait for ever.
    if (sse.isConnected) await tail
  }
  reply.streamEnding = ending
  streamsEnded.add(1, { 'content_engine.stream.ending': ending })
  if (ending === 'client_gone') logCallerGone(request, reply)
}

/** A stored answer to an Idempotency-Key, as the stream it came from would end: accepted, then result. */
export async function replayStream (request: FastifyRequest, reply: FastifyReply, outcome: { status: number, body: string }) {
  const post = JSON.parse(outcome.body) as { id: string }
  reply.header('server-timing', `app;dur=${reply.elapsedTime.toFixed(1)}`)
  await reply.sse.send({ id: '0', event: 'accepted', data: JSON.stringify({ id: post.id, requestId: request.id }) })
  await reply.sse.send({ id: '1', event: 'result', data: outcome.body })
  reply.streamEnding = 'result'
  streamsEnded.add(1, { 'content_engine.stream.ending': 'result' })
}

/** The documented error shape, and the status the JSON answer would have had. */
function errorEvent (error: unknown, requestId: string): ErrorBody & { status: number } {
  if (isServiceError(error)) {
    return { error: { code: error.code, message: error.message, ...(error.details === undefined ? {} : { details: error.details }) }, requestId, status: error.statusCode }
  }
  return { error: { code: 'internal_error', message: catalogue.internal_error.message }, requestId, status: 500 }
}
