import { SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import { ServiceError } from '../errors.ts'
import { upstreamStall } from '../resilience/guard.ts'
import { stepDuration } from '../telemetry/instruments.ts'

export type Step = 'plan' | 'sections' | 'image' | 'sentiment' | 'keywords'
export type StepTimeouts = Readonly<Record<Step, number>>

const tracer = trace.getTracer('content-engine')
export const round = (ms: number) => Math.round(ms * 10) / 10

/**
 * Runs one step in its own span (the parent of its upstream calls), timed in ms and in the
 * metric, with its own timeout: never longer than what is left of the request's deadline.
 * Under a span that is not being recorded (no exporter configured, or a trace the sampler left
 * out) the parent-based sampler would not record the step's span either, so none is made: the
 * upstream calls then carry the caller's trace context as it came.
 */
export async function runStep<T> (step: Step, parent: AbortSignal, limit: StepLimit, run: (signal: AbortSignal) => Promise<T>) {
  const active = trace.getActiveSpan()
  if (active !== undefined && !active.isRecording()) return await timed(step, parent, limit, run)
  return await tracer.startActiveSpan(`pipeline ${step}`, (span) => timed(step, parent, limit, run, span))
}

/**
 * How long a step may take, and whether that is the step's own limit (an upstream that outlasts
 * it has stalled, which counts against it) or what is left of the request's deadline (which says
 * nothing about the upstream, and must never open its breaker).
 */
export interface StepLimit { ms: number, own: boolean }

export function stepLimit (ownMs: number, deadlineAt: number): StepLimit {
  const leftMs = deadlineAt - Date.now()
  return ownMs < leftMs ? { ms: ownMs, own: true } : { ms: leftMs, own: false }
}

async function timed<T> (step: Step, parent: AbortSignal, limit: StepLimit, run: (signal: AbortSignal) => Promise<T>, span?: Span) {
  const start = performance.now()
  const controller = new AbortController()
  const onAbort = () => controller.abort(parent.reason)
  parent.addEventListener('abort', onAbort, { once: true })
  const timer = setTimeout(() => {
    const reason = new ServiceError('upstream_timeout', { message: `The ${step} step did not finish within ${Math.round(limit.ms)} ms.`, details: { step } })
    controller.abort(limit.own ? upstreamStall(reason) : reason)
  }, Math.max(0, limit.ms))
  let outcome = 'ok'
  try {
    parent.throwIfAborted()
    return { value: await run(controller.signal), ms: round(performance.now() - start) }
  } catch (error) {
    outcome = 'error'
    span?.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof ServiceError ? error.code : 'error' })
    throw error
  } finally {
    clearTimeout(timer)
    parent.removeEventListener('abort', onAbort)
    stepDuration.record((performance.now() - start) / 1000, { 'content_engine.step': step, 'content_engine.outcome': outcome })
    span?.end()
  }
}
