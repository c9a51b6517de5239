import { isSpanContextValid, trace } from '@opentelemetry/api'
import type { LoggerOptions } from 'pino'

// pino level -> Cloud Logging LogSeverity.
const SEVERITY: Record<string, string> = {
  trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL'
}

const ALWAYS_REDACTED = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-goog-api-key']

export interface LogSettings {
  level: string
  googleCloudProject?: string | undefined
  redactHeaders?: readonly string[]
  pretty?: boolean
}

/**
 * JSON on stdout in the shape Cloud Logging reads: `severity`, `message`, and the active span as
 * logging.googleapis.com/trace, spanId and trace_sampled. Written here rather than taken from
 * @google-cloud/pino-logging-gcp-config, which pulls in @google-cloud/logging and asks the
 * metadata server for the project at start-up; its output fields are the same.
 */
export function loggerOptions ({ level, googleCloudProject, redactHeaders = [], pretty = false }: LogSettings): LoggerOptions {
  const headers = [...new Set([...ALWAYS_REDACTED, ...redactHeaders])]
  return {
    level,
    messageKey: 'message',
    formatters: {
      level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' })
    },
    mixin () {
      const context = trace.getActiveSpan()?.spanContext()
      // Without a tracer provider the active span may be a placeholder with all-zero ids.
      if (context === undefined || !isSpanContextValid(context)) return {}
      const sampled = (context.traceFlags & 1) === 1
      if (googleCloudProject === undefined) return { trace_id: context.traceId, span_id: context.spanId, trace_flags: sampled ? '01' : '00' }
      return {
        'logging.googleapis.com/trace': `projects/${googleCloudProject}/traces/${context.traceId}`,
        'logging.googleapis.com/spanId': context.spanId,
        'logging.googleapis.com/trace_sampled': sampled
      }
    },
    redact: {
      paths: [...headers.flatMap((name) => [`req.headers["${name}"]`, `headers["${name}"]`]), '*.apiKey', 'apiKey'],
      censor: '[redacted]'
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { messageKey: 'message' } } } : {})
  }
}
