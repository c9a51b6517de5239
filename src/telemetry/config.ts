import { z } from 'zod'
import { deepFreeze, optionalText, optionalUrl, parseEnv } from '../env.ts'

export const telemetrySchema = z.object({
  OTEL_SDK_DISABLED: z.stringbool().default(false),
  METRICS_PORT: z.coerce.number().int().min(1).max(65_535).default(9464),
  METRICS_HOST: z.string().trim().min(1).default('127.0.0.1'),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).default(0.1),
  // Cloud Run sets K_SERVICE; only there is there a metadata server to detect resources from.
  K_SERVICE: optionalText
})

/** The telemetry preload's settings; it runs before server.ts, so it parses its own few variables. */
export function loadTelemetryConfig (env: Record<string, string | undefined>) {
  const parsed = parseEnv(telemetrySchema, env, 'telemetry configuration')
  return deepFreeze({
    disabled: parsed.OTEL_SDK_DISABLED,
    metricsPort: parsed.METRICS_PORT,
    metricsHost: parsed.METRICS_HOST,
    otlpEndpoint: parsed.OTEL_EXPORTER_OTLP_ENDPOINT,
    traceSampleRatio: parsed.OTEL_TRACES_SAMPLER_ARG,
    onGoogleCloud: parsed.K_SERVICE !== undefined
  })
}

export type TelemetryConfig = ReturnType<typeof loadTelemetryConfig>
