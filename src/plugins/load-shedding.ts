import { getHeapStatistics } from 'node:v8'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ServiceError } from '../errors.ts'
import { requestsShed } from '../telemetry/instruments.ts'

export interface LoadSheddingOptions {
  maxEventLoopDelayMs: number
  maxHeapUsedRatio: number
}

/**
 * Refuses new work, fast and in the documented shape, when the event loop lags or the heap nears
 * its limit (@fastify/under-pressure samples both). /healthz and /readyz are never refused: a busy instance is
 * not a dead one, and failing its liveness probe would only get it restarted mid-work.
 */
async function loadShedding (app: FastifyInstance, options: LoadSheddingOptions) {
  await app.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * options.maxHeapUsedRatio),
    pressureHandler: async (request, reply, type) => {
      if (request.url === '/healthz' || request.url === '/readyz') return
      requestsShed.add(1, { 'content_engine.shed.reason': type })
      throw new ServiceError('overloaded', { details: { reason: type }, headers: { 'retry-after': '1' } })
    }
  })
}

export default fp(loadShedding, { name: 'load-shedding', fastify: '5.x' })
