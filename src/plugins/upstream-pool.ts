import fp from 'fastify-plugin'
import { Agent, type Dispatcher } from 'undici'

export interface UpstreamPoolOptions {
  connections: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  keepAliveTimeoutMs: number
  /** A dispatcher made elsewhere (a MockAgent in tests). The plugin uses it and never closes it. */
  dispatcher?: Dispatcher | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The process's one HTTP client: every upstream call goes through it. */
    readonly upstream: Dispatcher
  }
}

export function createUpstreamAgent (options: Omit<UpstreamPoolOptions, 'dispatcher'>) {
  return new Agent({
    connections: options.connections,
    connect: { timeout: options.connectTimeoutMs },
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
  app.addHook('onReady', async () => {
    dispatcher ??= createUpstreamAgent(options)
  })
  app.addHook('onClose', async () => {
    if (owned && dispatcher !== undefined) await dispatcher.close()
  })
}

export default fp(upstreamPool, { name: 'upstream-pool', fastify: '5.x' })
