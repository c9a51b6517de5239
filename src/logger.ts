import type { LoggerOptions } from 'pino'

// pino level -> Cloud Logging LogSeverity.
const SEVERITY: Record<string, string> = {
  trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL'
}

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-goog-api-key"]',
  'req.headers.cookie',
  '*.apiKey'
]

/** JSON on stdout in the shape Cloud Logging reads: `severity` and `message`. */
export function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    messageKey: 'message',
    formatters: {
      level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' })
    },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' }
  }
}
