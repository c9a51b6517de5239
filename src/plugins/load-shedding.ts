import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ServiceError } from '../errors.ts'
import { requestsShed } from '../telemetry/instruments.ts'

export interface LoadSheddingOptions {
  maxEventLoopDelayMs: number
  /** How long the delay must stay above its limit before new work is refused. */
  eventLoopDelayWindowMs: number
  maxHeapUsedRatio: number
}

const EXEMPT = new Set(['/healthz', '/readyz'])

function overloaded (reason: string) {
  requestsShed.add(1, { 'content_engine.shed.reason': reason })
  return new ServiceError('overloaded', { details: { reason }, headers: { 'retry-after': '1' } })
}

/**
 * Whether the event loop has been lagging for a while, not for a moment. The mean delay over each
 * sample, as @fastify/under-pressure measures it; but a single sample over the limit is a burst
 * the loop clears by itself (a thousand posts completing in the same second block it for a
 * second or two), and refusing callers then turns a blip into errors. Only a delay that stays
 * over the limit for `windowMs`, sample after sample, means the CPU cannot keep up with what was
 * admitted: then the work queued behind it would miss its deadlines, and new work is refused.
 */
function createLagMonitor ({ thresholdMs, windowMs }: { thresholdMs: number, windowMs: number }) {
  const resolution = 10
  const histogram = monitorEventLoopDelay({ resolution })
  histogram.enable()
  let overSince: number | undefined
  // Once a second, as @fastify/under-pressure samples.
  const timer = setInterval(() => {
    const lagMs = Math.max(0, histogram.mean / 1e6 - resolution)
    histogram.reset()
    if (Number.isNaN(lagMs) || lagMs > thresholdMs) overSince ??= performance.now()
    else overSince = undefined
  }, 1_000)
  timer.unref()
  return {
    get overloaded () { return overSince !== undefined && performance.now() - overSince >= windowMs },
    close () {
      clearInterval(timer)
      histogram.disable()
    }
  }
}

/**
 * Refuses new work, fast and in the documented shape, when the event loop has lagged for a while
 * (above) or the heap nears its limit (@fastify/under-pressure samples it). /healthz and /readyz are
 * never refused: a busy instance is not a dead one, and failing its liveness probe would only get
 * it restarted mid-work.
 */
async function loadShedding (app: FastifyInstance, options: LoadSheddingOptions) {
  await app.register(underPressure, {
    maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * options.maxHeapUsedRatio),
    pressureHandler: async (request, reply, type) => {
      if (EXEMPT.has(request.url)) return
      throw overloaded(type)
    }
  })
  const lag = createLagMonitor({ thresholdMs: options.maxEventLoopDelayMs, windowMs: options.eventLoopDelayWindowMs })
  app.addHook('onClose', async () => lag.close())
  app.addHook('onRequest', async (request: FastifyRequest) => {
    if (lag.overloaded && !EXEMPT.has(request.url)) throw overloaded('eventLoopDelay')
  })
}

export default fp(loadShedding, { name: 'load-shedding', fastify: '5.x' })
