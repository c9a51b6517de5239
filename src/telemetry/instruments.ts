// The metrics the code itself produces, through the OpenTelemetry API only: without the preloaded
// SDK these are no-ops, so tests and tools that build the app pay nothing for them.
// The metrics API has no proxy: getMeter() before the SDK starts returns a no-op meter for good.
// So the preload (src/telemetry/sdk.ts) must never import this module, directly or not.
import { metrics, ValueType, type Attributes } from '@opentelemetry/api'
import { DURATION_BUCKETS_S, FIRST_EVENT_BUCKETS_S, TOKEN_BUCKETS } from './buckets.ts'

const meter = metrics.getMeter('content-engine')

export const stepDuration = meter.createHistogram('content_engine.pipeline.step.duration', {
  description: 'Duration of each pipeline step.',
  unit: 's',
  advice: { explicitBucketBoundaries: DURATION_BUCKETS_S }
})

export const stepWarnings = meter.createCounter('content_engine.pipeline.warnings', {
  description: 'Optional steps that failed and became a warning in the response.',
  valueType: ValueType.INT
})

export const keySetFetches = meter.createCounter('content_engine.auth.key_set.fetches', {
  description: 'Fetches of the signing keys that verify callers\' tokens, by outcome (ok, error).',
  valueType: ValueType.INT
})

export const upstreamAttempts = meter.createCounter('content_engine.upstream.attempts', {
  description: 'Calls sent to an upstream, first attempts and retries: retries / first is the retry amplification.',
  valueType: ValueType.INT
})

export const hedges = meter.createCounter('content_engine.upstream.hedges', {
  description: 'Hedged Natural Language calls, by outcome: sent (a second copy went out), won (the second copy answered first), over_budget (one was due, but the call ended before a token and a slot were free).',
  valueType: ValueType.INT
})

export const breakerTransitions = meter.createCounter('content_engine.upstream.breaker.transitions', {
  description: 'Circuit breaker state changes per upstream kind, by the state entered (open, half_open, closed).',
  valueType: ValueType.INT
})

export const streamFirstEvent = meter.createHistogram('content_engine.stream.time_to_first_event', {
  description: 'From a streamed request\'s arrival to its accepted event.',
  unit: 's',
  advice: { explicitBucketBoundaries: FIRST_EVENT_BUCKETS_S }
})

export const streamFirstDelta = meter.createHistogram('content_engine.stream.time_to_first_delta', {
  description: 'From a streamed request\'s arrival to the first text of its body.',
  unit: 's',
  advice: { explicitBucketBoundaries: DURATION_BUCKETS_S }
})

export const streamsEnded = meter.createCounter('content_engine.streams', {
  description: 'Streamed answers, by how they ended: result, error, client_gone.',
  valueType: ValueType.INT
})

export const redisErrors = meter.createCounter('content_engine.redis.errors', {
  description: 'Redis commands that failed or timed out, by operation (idempotency, rate_limit, concurrency, readiness); each was answered by its documented fallback.',
  valueType: ValueType.INT
})

export const requestsShed = meter.createCounter('content_engine.requests.shed', {
  description: 'Requests refused with 503 overloaded before any work, by reason: concurrency (MAX_CONCURRENT_REQUESTS), eventLoopDelay, heapUsedBytes.',
  valueType: ValueType.INT
})

export const idempotencyOutcomes = meter.createCounter('content_engine.idempotency.requests', {
  description: 'Requests with an Idempotency-Key, by outcome: claimed, replayed, conflict (409, still running), mismatch (422), stored, released (failed, key freed), unavailable (503, store down), lost (the lease passed to another request).',
  valueType: ValueType.INT
})

// gen_ai.* follow the GenAI semantic conventions.
export const genAiDuration = meter.createHistogram('gen_ai.client.operation.duration', {
  description: 'GenAI operation duration.',
  unit: 's',
  advice: { explicitBucketBoundaries: DURATION_BUCKETS_S }
})

export const genAiTokens = meter.createHistogram('gen_ai.client.token.usage', {
  description: 'Tokens used per GenAI operation.',
  unit: '{token}',
  valueType: ValueType.INT,
  advice: { explicitBucketBoundaries: TOKEN_BUCKETS }
})

/** Observes a value per attribute set on every collection, until the returned function is called. */
export function observeGauges (names: Record<string, { name: string, description: string }>, read: () => Array<{ attributes: Attributes, values: Record<string, number> }>) {
  const gauges = Object.entries(names).map(([key, { name, description }]) => [key, meter.createObservableGauge(name, { description, valueType: ValueType.INT })] as const)
  const callback = (result: import('@opentelemetry/api').BatchObservableResult) => {
    for (const { attributes, values } of read()) {
      for (const [key, gauge] of gauges) {
        const value = values[key]
        if (value !== undefined) result.observe(gauge, value, attributes)
      }
    }
  }
  const observables = gauges.map(([, gauge]) => gauge)
  meter.addBatchObservableCallback(callback, observables)
  return () => meter.removeBatchObservableCallback(callback, observables)
}
