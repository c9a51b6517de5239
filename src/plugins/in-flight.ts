import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ServiceError } from '../errors.ts'
import { observeGauges, requestsShed } from '../telemetry/instruments.ts'
import { createMemorySlots, createRedisSlots, type CallerSlots, type Release } from '../limits/caller-slots.ts'

/** The reason a request's work is aborted when its caller closes the connection first. */
export class CallerGone extends Error {
  override name = 'CallerGone'
  constructor () {
    super('the caller closed the connection')
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Requests being generated: each one's signal, and the means to stop them all at shutdown. */
    readonly inFlight: ReturnType<typeof createInFlight>
  }
}

function createInFlight (maxConcurrent: number, maxPerCaller: number, slots: () => CallerSlots) {
  const controllers = new Set<AbortController>()
  // Work that goes on after its caller left (a request with an Idempotency-Key): its admission and
  // its deadline are held until it ends, not until the connection closes.
  const holds = new WeakMap<FastifyReply, Promise<unknown>>()
  const afterWork = (reply: FastifyReply, then: () => void) => {
    const work = holds.get(reply)
    if (work === undefined) then()
    else work.then(then, then)
  }
  let admitted = 0
  return {
    get size () { return controllers.size },
    /** Requests admitted and not yet done, keyed work that outlived its caller included. */
    get admitted () { return admitted },
    /**
     * Admission, as an onRequest hook: past the limit a caller gets 503 before its body is even
     * read, so refusing a burst stays cheap and the admitted requests keep their latency.
     */
    async admit (request: FastifyRequest, reply: FastifyReply) {
      if (admitted >= maxConcurrent) {
        requestsShed.add(1, { 'content_engine.shed.reason': 'concurrency' })
        throw new ServiceError('overloaded', { details: { reason: 'concurrency' }, headers: { 'retry-after': '1' } })
      }
      // One authenticated caller cannot take every slot: its own concurrent generations are capped.
      // Counted first, so the await below cannot let a burst past the instance's limit.
      admitted++
      let release: Release | undefined
      try {
        release = request.caller === '' ? () => {} : await slots().acquire(request.caller, maxPerCaller)
      } finally {
        if (release === undefined) admitted--
      }
      if (release === undefined) {
        throw new ServiceError('rate_limited', { message: `At most ${maxPerCaller} concurrent generations per caller.`, headers: { 'retry-after': '1' } })
      }
      const done = () => {
        admitted--
        release()
      }
      if (reply.raw.closed) done()
      else reply.raw.once('close', () => afterWork(reply, done))
    },
    /** Keeps the request's admission and deadline until `work` settles, even if its caller leaves. */
    hold (reply: FastifyReply, work: Promise<unknown>) {
      holds.set(reply, work)
    },
    /**
     * A signal that aborts when the caller leaves, when the deadline passes, or at abortAll().
     * It listens on the reply's close, not the request's: Fastify's request `close` fires once a
     * POST body has been read (fastify/fastify#4690).
     */
    start (reply: FastifyReply, deadlineMs: number) {
      const controller = new AbortController()
      controllers.add(controller)
      const timer = setTimeout(() => controller.abort(new ServiceError('upstream_timeout', {
        message: `The request did not finish within its ${deadlineMs} ms deadline.`
      })), deadlineMs)
      const onClose = () => {
        if (holds.has(reply)) {
          afterWork(reply, () => {
            clearTimeout(timer)
            controllers.delete(controller)
          })
          return
        }
        clearTimeout(timer)
        controllers.delete(controller)
        if (!reply.raw.writableFinished) controller.abort(new CallerGone())
      }
      // A caller can leave after its body was read but before the handler starts: 'close' has
      // then fired already, and a listener added now would never run.
      if (reply.raw.closed) onClose()
      else reply.raw.once('close', onClose)
      return controller.signal
    },
    abortAll () {
      for (const controller of controllers) controller.abort(new ServiceError('shutting_down', { headers: { 'retry-after': '1' } }))
    }
  }
}

async function inFlight (app: FastifyInstance, options: { maxConcurrent: number, maxPerCaller: number, leaseMs: number }) {
  const local = createMemorySlots()
  let slots = local
  // With REDIS_URL a caller's concurrency is counted across instances (limits/caller-slots.ts).
  app.addHook('onReady', async () => {
    if (app.redis !== undefined) slots = createRedisSlots({ redis: app.redis, leaseMs: options.leaseMs, local, onError: (error) => app.redisFailed('concurrency', error) })
  })
  const requests = createInFlight(options.maxConcurrent, options.maxPerCaller, () => slots)
  app.decorate('inFlight', requests)
  const stopObserving = observeGauges({
    inFlight: { name: 'content_engine.requests.in_flight', description: 'Requests admitted and not yet done, against MAX_CONCURRENT_REQUESTS.' }
  }, () => [{ attributes: {}, values: { inFlight: requests.admitted } }])
  app.addHook('onClose', async () => stopObserving())
  let closing = false
  // Our own 503 instead of Fastify's return503OnClosing, whose body is not the documented shape.
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async () => {
    if (closing) throw new ServiceError('shutting_down', { headers: { 'retry-after': '1', connection: 'close' } })
  })
  // Node's server.close() only reaps the connections idle at that moment. One whose response ends
  // later would stay open for its keep-alive timeout and hold up the close, so reap again once the
  // response is out (a request already pipelined behind it is still read, and answered 503 above).
  app.addHook('onResponse', async () => {
    if (closing) setImmediate(() => app.server.closeIdleConnections())
  })
}

export default fp(inFlight, { name: 'in-flight', fastify: '5.x', dependencies: ['redis'] })
