import { setTimeout as sleep } from 'node:timers/promises'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig, simulatorUpstreams, type Config } from './config.ts'
import { runShutdownHooks } from './lifecycle.ts'
import { startSimulator, type Simulator } from './simulator/server.ts'
import { realPace } from './simulator/stream.ts'

async function start (config: Config) {
  let simulator: Simulator | undefined
  let upstreams = config.upstreams
  if (upstreams === undefined) {
    const latency = { fixedMs: config.simulator.latencyMs, jitterMs: config.simulator.latencyMs / 10 }
    simulator = await startSimulator({
      port: config.simulator.port,
      latency: { llm: latency, image: latency, sentiment: latency, entities: latency },
      // With a bucket, answer in base64 as current image models do, so the upload path runs.
      imageFormat: config.image.bucket === undefined ? 'url' : 'b64',
      pace: config.simulator.pace === 'real' ? realPace(config.simulator.paceScale) : undefined
    })
    upstreams = simulatorUpstreams(config, simulator.origin)
  }

  const app = await buildApp({ config, upstreams, prettyLogs: process.stdout.isTTY === true && canResolve('pino-pretty') })
  if (simulator !== undefined) {
    app.log.info({ simulator: simulator.origin },
      `PROVIDERS=simulator: using the bundled upstream simulator at ${simulator.origin}. ` +
      'Set PROVIDERS=live with LLM_*, IMAGE_* and LANGUAGE_* variables to use real providers (see .env.example).')
  }

  // Cloud Run sends SIGTERM and kills the container 10 s later. In-flight requests get
  // SHUTDOWN_GRACE_MS to finish; then their upstream calls are aborted (each answers 503), the pool
  // closes and telemetry flushes. close-with-grace exits 1 at once on a second signal, or if all
  // of that has not finished 1.5 s after the grace period.
  closeWithGrace({ delay: config.shutdownGraceMs + 1_500, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an uncaught error')
    else app.log.info({ signal, inFlight: app.inFlight.size }, 'shutting down')
    const closed = app.close()
    const drained = await Promise.race([closed.then(() => true), sleep(config.shutdownGraceMs, false, { ref: false })])
    if (!drained) {
      app.log.warn({ inFlight: app.inFlight.size }, 'grace period over: aborting in-flight requests')
      app.inFlight.abortAll()
    }
    await closed
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
