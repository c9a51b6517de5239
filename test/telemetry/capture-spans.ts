// A test preload: the service's own telemetry set-up, with finished spans kept by an in-memory
// exporter and copied, one JSON line each, to fd 3 for the test to read.
import { createWriteStream } from 'node:fs'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace'
import { loadTelemetryConfig } from '../../src/telemetry/config.ts'
import { startTelemetry } from '../../src/telemetry/sdk.ts'

const out = createWriteStream('', { fd: 3 })

class StreamingMemoryExporter extends InMemorySpanExporter {
  override export (spans: ReadableSpan[], done: Parameters<InMemorySpanExporter['export']>[1]) {
    super.export(spans, done)
    for (const span of spans) {
      out.write(JSON.stringify({
        name: span.name,
        kind: span.kind,
        traceId: span.spanContext().traceId,
        spanId: span.spanContext().spanId,
        parentSpanId: span.parentSpanContext?.spanId,
        attributes: span.attributes
      }) + '\n')
    }
  }
}

startTelemetry(loadTelemetryConfig(process.env), { spanProcessors: [new SimpleSpanProcessor({ exporter: new StreamingMemoryExporter() })] })
