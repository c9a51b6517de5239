import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { CHAOS_KINDS, ENDPOINTS, parseChaosKinds, parseEndpointFault, type Endpoint, type Fault } from './faults.ts'
import { startSimulator, type Latency } from './server.ts'
import { realPace } from './stream.ts'

const USAGE = `Usage: npm run simulator -- [--port 4010] [--latency 50] [--jitter 10]
       [--latency-llm 200] [--fault llm:status=503,retry-after=1] [--image-format url|b64]
       [--keep-alive-ms 5000] [--tls-cert FILE --tls-key FILE] [--pace instant|real [--pace-scale 0.1] [--tokens-per-second 80]] [--fault-rate 0.2 [--fault-kinds ${CHAOS_KINDS.join(',')}] [--slow-ms 500]]
Endpoints: ${ENDPOINTS.join(', ')}.
Faults: status=N[,retry-after=S] | delay=MS | hang | hang-body | reset[=headers|body] | malformed |
        oversize=BYTES | wrong-shape | quota | retry-after-ms=MS; streamed llm calls also stall | cut |
        stream-error | no-done | finish-length; with times=N for the first N calls only, and
        kind=plan|section to aim at one kind of llm call
TLS: with a PEM certificate and key, HTTPS speaking HTTP/2 or HTTP/1.1 as the client offers (ALPN)
Pace: real is 0.5 s to the first token then 80 tokens/s (a token is 4 characters), 15 s per image,
        150 ms per Natural Language call; --pace-scale multiplies every figure (0.1: ten times faster)
Random faults: --fault-rate P gives every provider call that no --fault or x-sim-fault applies to
        a fault with probability P, of a kind drawn from --fault-kinds (default: all)`

function main () {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.SIMULATOR_PORT ?? '4010' },
      host: { type: 'string', default: '127.0.0.1' },
      latency: { type: 'string', default: '0' },
      jitter: { type: 'string', default: '0' },
      'latency-llm': { type: 'string' },
      'latency-image': { type: 'string' },
      'latency-sentiment': { type: 'string' },
      'latency-entities': { type: 'string' },
      fault: { type: 'string', multiple: true, default: [] },
      'image-format': { type: 'string', default: 'url' },
      'keep-alive-ms': { type: 'string', default: '5000' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'fault-rate': { type: 'string', default: '0' },
      'fault-kinds': { type: 'string', default: CHAOS_KINDS.join(',') },
      'slow-ms': { type: 'string', default: '500' },
      pace: { type: 'string', default: 'instant' },
      'pace-scale': { type: 'string', default: '1' },
      'tokens-per-second': { type: 'string', default: '80' },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    console.log(USAGE)
    return
  }
  const number = (name: string, text: string) => {
    const value = Number(text)
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number, got "${text}"`)
    return value
  }
  const jitterMs = number('jitter', values.jitter)
  const latency: Partial<Record<Endpoint, Latency>> = {}
  for (const endpoint of ENDPOINTS) {
    const flag = `latency-${endpoint}` as const
    latency[endpoint] = { fixedMs: number(flag, values[flag] ?? values.latency), jitterMs }
  }
  const faults: Partial<Record<Endpoint, Fault>> = Object.fromEntries(values.fault.map(parseEndpointFault))
  const imageFormat = values['image-format']
  if (imageFormat !== 'url' && imageFormat !== 'b64') throw new Error('--image-format must be url or b64')

  const keepAliveTimeoutMs = number('keep-alive-ms', values['keep-alive-ms'])
  const rate = number('fault-rate', values['fault-rate'])
  if (rate > 1) throw new Error('--fault-rate is a probability, from 0 to 1')
  const chaos = rate === 0 ? undefined : { rate, kinds: parseChaosKinds(values['fault-kinds']), slowMs: number('slow-ms', values['slow-ms']) }
  if (values.pace !== 'instant' && values.pace !== 'real') throw new Error('--pace must be instant or real')
  const scale = number('pace-scale', values['pace-scale'])
  const pace = values.pace === 'real' ? realPace(scale, number('tokens-per-second', values['tokens-per-second'])) : undefined
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new Error('--tls-cert and --tls-key go together')
  const tls = values['tls-cert'] === undefined ? undefined : { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']!) }
  return startSimulator({ port: number('port', values.port), host: values.host, latency, faults, imageFormat, keepAliveTimeoutMs, pace, tls, ...(chaos === undefined ? {} : { chaos }) })
}

try {
  const simulator = await main()
  if (simulator !== undefined) {
    console.log(JSON.stringify({ message: `upstream simulator listening on ${simulator.origin}`, origin: simulator.origin, pid: process.pid }))
    const stop = () => { simulator.close().then(() => process.exit(0), () => process.exit(1)) }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  }
} catch (error) {
  console.error(`simulator: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
  process.exitCode = 2
}
