import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { metrics, ValueType, type Context } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { RuntimeNodeInstrumentation } from '@opentelemetry/instrumentation-runtime-node'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import { gcpDetector } from '@opentelemetry/resource-detector-gcp'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { AggregationType, InstrumentType, type ViewOptions } from '@opentelemetry/sdk-metrics'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, type SpanProcessor } from '@opentelemetry/sdk-trace'
import type { TelemetryConfig } from './config.ts'
import { onShutdown } from '../lifecycle.ts'
import { DURATION_BUCKETS_S, GC_BUCKETS_S } from './buckets.ts'

// Requests the service does not answer itself: the metrics endpoint, and the provider routes of
// the simulator, which `npm start` runs in the same process.
const NOT_OURS = /^\/(?:v1\/|__sim\/)/

export interface TelemetryOverrides {
  /** Replaces the OTLP exporter (tests capture spans in memory). */
  spanProcessors?: SpanProcessor[]
}

/**
 * The SDK's default context manager without its EventEmitter patching. On Node 24 the active
 * context already follows every await and callback (AsyncContextFrame); patching emitters
 * re-wraps every listener added to every request and response in a closure that re-enters the
 * context, and gives each of those objects its own copies of on/once/removeListener. Without it,
 * the span tree and the trace ids on every log line (access line, auth failure, validation error)
 * are unchanged: test/telemetry/traces.test.ts checks both. Functions are still bound.
 */
class PromiseContextManager extends AsyncLocalStorageContextManager {
  override bind<T> (context: Context, target: T): T {
    return target instanceof EventEmitter ? target : super.bind(context, target)
  }
}

function serviceVersion () {
  // src/ and dist/ both sit one level below package.json.
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return version
}

export function startTelemetry (config: TelemetryConfig, overrides: TelemetryOverrides = {}) {
  // A port already taken would leave the instance serving with no metrics, and the exporter only
  // reports it through the diag logger: the dashboards would go blind without a word. Stop instead.
  const prometheus = new PrometheusExporter({ host: config.metricsHost, port: config.metricsPort }, (error) => {
    if (error === undefined) return
    console.error(`METRICS_PORT: cannot serve /metrics on ${config.metricsHost}:${config.metricsPort}: ${error.message}`)
    process.exit(1)
  })
  const spanProcessors = overrides.spanProcessors ??
    (config.otlpEndpoint === undefined ? [] : [new BatchSpanProcessor({ exporter: new OTLPTraceExporter() })])

  const sdk = new NodeSDK({
    // service.instance.id must differ per instance, or Prometheus series from instances collide.
    resource: resourceFromAttributes({
      'service.name': 'content-engine',
      'service.version': serviceVersion(),
      'service.instance.id': randomUUID()
    }),
    autoDetectResources: true,
    contextManager: new PromiseContextManager(),
    // The GCP detector asks the metadata server, which exists only on Google Cloud.
    resourceDetectors: config.onGoogleCloud ? [gcpDetector] : [],
    metricReaders: [prometheus],
    // Buckets that fit what each histogram measures. The instrumentations' HTTP durations stop at
    // 10 s, short of an LLM request; GC pauses are sub-millisecond to tens of ms. The service's own
    // histograms carry their buckets as advice (telemetry/instruments.ts).
    views: [
      ...['http.server.request.duration', 'http.client.request.duration'].map((instrumentName) => histogramView(instrumentName, DURATION_BUCKETS_S)),
      histogramView('v8js.gc.duration', GC_BUCKETS_S)
    ],
    // With no processor the SDK registers no tracer provider: nothing is recorded or exported,
    // but an incoming traceparent still propagates to every upstream.
    spanProcessors,
    logRecordProcessors: [],
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.traceSampleRatio) }),
    instrumentations: [
      new HttpInstrumentation({
        disableOutgoingRequestInstrumentation: true,
        ignoreIncomingRequestHook: (request: IncomingMessage) =>
          request.socket.localPort === config.metricsPort || NOT_OURS.test(request.url ?? '')
      }),
      new UndiciInstrumentation(),
      // The request span and the handler span; not one span per lifecycle hook (a dozen per
      // request, each wrapped in its own context switch).
      new FastifyOtelInstrumentation({ registerOnInitialization: true, instrumentHooks: false }),
      new RuntimeNodeInstrumentation({ monitoringPrecision: 10 })
    ]
  })
  sdk.start()
  observeProcess()
  onShutdown(() => sdk.shutdown())
  return sdk
}

function histogramView (instrumentName: string, boundaries: number[]): ViewOptions {
  return {
    instrumentName,
    instrumentType: InstrumentType.HISTOGRAM,
    aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries } }
  }
}

function observeProcess () {
  const meter = metrics.getMeter('content-engine.process')
  const rss = meter.createObservableGauge('process.memory.usage', { unit: 'By', description: 'Resident set size.', valueType: ValueType.INT })
  const memory = meter.createObservableGauge('nodejs.memory.usage', { unit: 'By', description: 'V8 heap and off-heap memory, by type.', valueType: ValueType.INT })
  const fds = meter.createObservableGauge('process.unix.file_descriptor.count', { unit: '{file_descriptor}', description: 'Open file descriptors.', valueType: ValueType.INT })
  meter.addBatchObservableCallback((result) => {
    const usage = process.memoryUsage()
    result.observe(rss, usage.rss)
    result.observe(memory, usage.heapUsed, { 'nodejs.memory.type': 'heap_used' })
    result.observe(memory, usage.heapTotal, { 'nodejs.memory.type': 'heap_total' })
    result.observe(memory, usage.external, { 'nodejs.memory.type': 'external' })
    result.observe(memory, usage.arrayBuffers, { 'nodejs.memory.type': 'array_buffers' })
    try {
      // One descriptor is the directory being read.
      result.observe(fds, readdirSync('/proc/self/fd').length - 1)
    } catch {}
  }, [rss, memory, fds])
}
