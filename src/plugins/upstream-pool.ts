import { lookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { readFileSync } from 'node:fs'
import { createSecureContext, rootCertificates } from 'node:tls'
import fp from 'fastify-plugin'
import { Agent, type Dispatcher } from 'undici'
import { observeGauges } from '../telemetry/instruments.ts'

export interface UpstreamPoolOptions {
  connections: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  keepAliveTimeoutMs: number
  /** Offer HTTP/2 to HTTPS upstreams (ALPN); the upstream chooses. */
  http2: boolean
  /** Concurrent calls on one HTTP/2 connection (the upstream's SETTINGS may lower it). */
  http2Streams: number
  /** A PEM file of an extra CA trusted for upstream HTTPS, beside the system's roots. */
  caFile: string | undefined
  /** A dispatcher made elsewhere (a MockAgent in tests). The plugin uses it and never closes it. */
  dispatcher?: Dispatcher | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The process's one HTTP client: every upstream call goes through it. */
    readonly upstream: Dispatcher
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family: number) => void

// RFC 6761 §6.4: names under .invalid never resolve, and resolvers should say so at once rather
// than ask a DNS server; getaddrinfo does ask. A misconfigured base URL then fails fast, offline.
function lookupUnlessInvalid (hostname: string, options: LookupOptions, callback: LookupCallback) {
  if (/\.invalid\.?$/i.test(hostname)) {
    const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname })
    process.nextTick(callback, error, '', 0)
    return
  }
  lookup(hostname, options, callback)
}

export function createUpstreamAgent (options: Omit<UpstreamPoolOptions, 'dispatcher'>) {
  // An extra CA goes beside the system's roots (a `ca` option alone would replace them), in one
  // secure context made here: given `ca`, tls.connect would build a context, parsing every root
  // certificate, for each new connection (measured: 0.5 s of CPU a post over 700 HTTP/1.1 sockets).
  const secureContext = options.caFile === undefined
    ? undefined
    : createSecureContext({ ca: [...rootCertificates, readFileSync(options.caFile, 'utf8')] })
  return new Agent({
    connections: options.connections,
    connect: { timeout: options.connectTimeoutMs, lookup: lookupUnlessInvalid, ...(secureContext === undefined ? {} : { secureContext }) },
    // undici offers h2 by ALPN unless told not to (allowH2, on by default since undici 8), so the
    // choice is written down here: UPSTREAM_HTTP2, on by default (docs/measured.md). Over HTTP/2
    // `connections` counts TCP connections, each carrying up to maxConcurrentStreams calls; the
    // guard's per-origin limit bounds the calls either way.
    allowH2: options.http2,
    maxConcurrentStreams: options.http2Streams,
    headersTimeout: options.headersTimeoutMs,
    bodyTimeout: options.bodyTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs,
    // A server's Keep-Alive hint may only shorten the idle lifetime, never lengthen it: idle
    // sockets (and their descriptors) are gone UPSTREAM_KEEP_ALIVE_TIMEOUT_MS after the last call.
    keepAliveMaxTimeout: options.keepAliveTimeoutMs
  })
}

async function upstreamPool (app: import('fastify').FastifyInstance, options: UpstreamPoolOptions) {
  let dispatcher = options.dispatcher
  const owned = dispatcher === undefined

  app.decorate('upstream', {
    getter () {
      if (dispatcher === undefined) throw new Error('the upstream pool is created in onReady; it is not ready yet')
      return dispatcher
    }
  })

  // Created once the app is ready and closed once in-flight requests have drained (onClose runs
  // after the server stopped accepting and its requests finished), per the design card.
  let stopObserving: (() => void) | undefined
  app.addHook('onReady', async () => {
    dispatcher ??= createUpstreamAgent(options)
    if (dispatcher instanceof Agent) stopObserving = observePool(dispatcher)
  })
  app.addHook('onClose', async () => {
    stopObserving?.()
    if (owned && dispatcher !== undefined) await dispatcher.close()
  })
}

/** One gauge per figure of undici's pool stats, per upstream origin. */
function observePool (agent: Agent) {
  const names = {
    connected: { name: 'content_engine.upstream.pool.connected', description: 'Open connections to the upstream origin.' },
    free: { name: 'content_engine.upstream.pool.free', description: 'Open connections with no request on them.' },
    pending: { name: 'content_engine.upstream.pool.pending', description: 'Requests waiting for a connection.' },
    queued: { name: 'content_engine.upstream.pool.queued', description: 'Requests queued on connections, not yet sent.' },
    running: { name: 'content_engine.upstream.pool.running', description: 'Requests in flight to the upstream origin.' }
  }
  // undici drops an origin from agent.stats once its last connection has closed, and the SDK
  // would keep exporting the last value it saw for it: a pool that read 18 connections under load
  // would read 18 forever after. An origin seen once is reported until the process ends, as 0 when
  // it has gone (the set is as small as the configured upstreams).
  const seen = new Map<string, ReturnType<typeof attributesOf>>()
  const IDLE = { connected: 0, free: 0, pending: 0, queued: 0, running: 0 }
  return observeGauges(names, () => {
    const stats = agent.stats
    for (const origin of Object.keys(stats)) if (!seen.has(origin)) seen.set(origin, attributesOf(origin))
    return [...seen].map(([origin, attributes]) => {
      const pool = stats[origin]
      if (pool === undefined) return { attributes, values: IDLE }
      // With UPSTREAM_CONNECTIONS=1 undici uses a Client per origin, whose stats have no free or queued.
      const values = 'free' in pool
        ? { connected: pool.connected, free: pool.free, pending: pool.pending, queued: pool.queued, running: pool.running }
        : { connected: Number(pool.connected), free: Number(pool.connected && pool.running === 0), pending: pool.pending, queued: pool.pending, running: pool.running }
      return { attributes, values }
    })
  })
}

function attributesOf (origin: string) {
  const url = new URL(origin)
  return { 'server.address': url.hostname, 'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)) }
}

export default fp(upstreamPool, { name: 'upstream-pool', fastify: '5.x' })
