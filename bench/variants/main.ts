// Runs the reference or the leaky variant as its own process, for the bench.
import { readFileSync } from 'node:fs'
import { loadConfig, simulatorUpstreams } from '../../src/config.ts'
import { buildLeakyApp } from './leaky.ts'
import { buildReferenceApp } from './reference.ts'

const variant = process.argv[2]
const origin = process.env.SIMULATOR_ORIGIN
if ((variant !== 'reference' && variant !== 'leaky') || origin === undefined) {
  console.error('usage: SIMULATOR_ORIGIN=http://127.0.0.1:PORT PORT=N node bench/variants/main.ts reference|leaky')
  process.exit(2)
}
const config = loadConfig({})
const upstreams = simulatorUpstreams(config, origin)
const connections = Number(process.env.UPSTREAM_CONNECTIONS ?? 64)
// The simulator's throwaway CA when it serves HTTPS (bench --tls); the reference trusts only it.
const caFile = process.env.UPSTREAM_TLS_CA_FILE
const app = variant === 'leaky' ? buildLeakyApp(upstreams) : buildReferenceApp(upstreams, connections, caFile === undefined ? undefined : readFileSync(caFile, 'utf8'))
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
console.log(`Server listening at http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
const stop = () => { app.close().then(() => process.exit(0), () => process.exit(1)) }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
