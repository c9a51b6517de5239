// Preloaded with `node --import` before anything else loads, so the instrumentations are in place
// when fastify, http and undici are first imported. App code never imports this file.
import { ConfigError } from './env.ts'
import { loadTelemetryConfig } from './telemetry/config.ts'
import { startTelemetry } from './telemetry/sdk.ts'

try {
  const config = loadTelemetryConfig(process.env)
  if (!config.disabled) startTelemetry(config)
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  console.error(error.message)
  process.exit(1)
}
