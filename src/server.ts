import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig, simulatorUpstreams, type Config } from './config.ts'
import { runShutdownHooks } from './lifecycle.ts'
import { startSimulator, type Simulator } from './simulator/server.ts'

async function start (config: Config) {
  let simulator: Simulator | undefined
  let upstreams = config.upstreams
  if (upstreams === undefined) {
    const latency = { fixedMs: config.simulator.latencyMs, jitterMs: config.simulator.latencyMs / 10 }
    simulator = await startSimulator({
      port: config.simulator.port,
      latency: { llm: latency, image: latency, sentiment: latency, entities: latency }
    })
    upstreams = simulatorUpstreams(config, simulator.origin)
  }

  const app = await buildApp({ config, upstreams, prettyLogs: process.stdout.isTTY === true && canResolve('pino-pretty') })
  if (simulator !== undefined) {
    app.log.info({ simulator: simulator.origin },
      `PROVIDERS=simulator: using the bundled upstream simulator at ${simulator.origin}. ` +
      'Set PROVIDERS=live with LLM_*, IMAGE_* and LANGUAGE_* variables to use real providers (see .env.example).')
  }

  // close-with-grace: a second signal, or the grace period running out, exits at once.
  closeWithGrace({ delay: config.shutdownGraceMs, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
    await simulator?.close()
    // Telemetry flushes last, so it still sees the requests that drained during app.close().
    await runShutdownHooks()
  })

  await app.listen({ port: config.port, host: config.host })
}

// pino-pretty is a development dependency: the production image has no terminal and no copy.
function canResolve (specifier: string) {
  try {
    import.meta.resolve(specifier)
    return true
  } catch {
    return false
  }
}

try {
  await start(loadConfig(process.env))
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  console.error(error.message)
  process.exitCode = 1
}
