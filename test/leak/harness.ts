// One variant of the service in its own process, so the leak guard can measure it from outside:
// started with --expose-gc and driven over IPC by test/leak/guard.ts.
import { readdirSync } from 'node:fs'
import { buildLeakyApp } from '../../bench/variants/leaky.ts'
import { buildApp } from '../../src/app.ts'
import { loadConfig, simulatorUpstreams } from '../../src/config.ts'

const variant = process.argv[2]
const simulatorOrigin = process.env.SIMULATOR_ORIGIN!
const config = loadConfig({ LOG_LEVEL: 'silent', ...JSON.parse(process.env.HARNESS_CONFIG ?? '{}') as Record<string, string> })
const upstreams = simulatorUpstreams(config, simulatorOrigin)

const warnings: string[] = []
process.on('warning', (warning) => warnings.push(warning.name))

const app = variant === 'leaky' ? buildLeakyApp(upstreams) : await buildApp({ config, upstreams })
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
process.send!({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })

const gc = (globalThis as { gc?: () => void }).gc!

process.on('message', async (message: { type: string }) => {
  if (message.type === 'measure') {
    gc()
    gc()
    const resources: Record<string, number> = {}
    for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1
    process.send!({
      type: 'measured',
      heapUsed: process.memoryUsage().heapUsed,
      rss: process.memoryUsage().rss,
      fds: readdirSync('/proc/self/fd').length,
      resources,
      warnings
    })
  }
  if (message.type === 'close') {
    await app.close()
    process.send!({ type: 'closed' })
  }
})
