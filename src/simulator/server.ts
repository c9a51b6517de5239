import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createSecureServer } from 'node:http2'
import type { EventEmitter } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { chatCompletion, chatContent, hostileContent, llmKind, wrongShape, type LlmKind } from './chat.ts'
import { drawFault, parseFault, type Chaos, type Endpoint, type Fault } from './faults.ts'
import { connectionOf, HttpError, readBytes, readJson, resetAnswer, send, sendBytes, sendHalf, sendOversize, sendProviderError, sendRaw, serveImage } from './http.ts'
import { imageId, pngImage } from './images.ts'
import { extractEntities } from './keywords.ts'
import { analyzeSentiment } from './sentiment.ts'
import { applyFieldMask } from './field-mask.ts'
import { streamChat, writingMs, type Pace } from './stream.ts'

export interface Latency { fixedMs: number, jitterMs: number }

export interface SimulatorOptions {
  port?: number
  host?: string
  latency?: Partial<Record<Endpoint, Latency>>
  faults?: Partial<Record<Endpoint, Fault>>
  /** How the image endpoint answers: a URL it serves, or base64 as current image models do. */
  imageFormat?: 'url' | 'b64'
  keepAliveTimeoutMs?: number
  /** Random faults on every provider call that no other fault applies to. */
  chaos?: Chaos
  /** Provider pace (realPace()); undefined answers at once. */
  pace?: Pace | undefined
  /**
   * Serve HTTPS with this key and certificate (PEM), speaking HTTP/2 or HTTP/1.1 as the client's
   * ALPN offer allows, as the providers' front ends do. Without it, plain HTTP/1.1.
   */
  tls?: { key: string | Buffer, cert: string | Buffer } | undefined
}

export interface CallRecord {
  endpoint: Endpoint
  kind: LlmKind | undefined
  startedAt: number
  endedAt: number | undefined
  aborted: boolean
  headers: IncomingMessage['headers']
}

const ROUTES: Record<string, Endpoint> = {
  '/v1/chat/completions': 'llm',
  '/v1/images/generations': 'image',
  '/v1/documents:analyzeSentiment': 'sentiment',
  '/v1/documents:analyzeEntities': 'entities'
}
// Vertex AI's OpenAI-compatible Chat Completions, as a fallback LLM is configured on Google Cloud.
const VERTEX_CHAT = /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/endpoints\/openapi\/chat\/completions$/
// Vertex AI Imagen's predict, as an image fallback is configured on Google Cloud.
const IMAGEN_PREDICT = /^\/v1\/projects\/[^/]+\/locations\/[^/]+\/publishers\/google\/models\/[^/:]+:predict$/
const MAX_CALL_RECORDS = 1_000
const MAX_OBJECTS = 100
const METADATA_TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token'

export async function startSimulator (options: SimulatorOptions = {}) {
  const latency = { ...options.latency }
  const faults = { ...options.faults }
  const faultHits: Record<Endpoint, number> = { llm: 0, image: 0, sentiment: 0, entities: 0 }
  const imageFormat = options.imageFormat ?? 'url'
  const calls: CallRecord[] = []
  // The last body of each LLM call kind, and of the image, so tests can read exactly what the service sent.
  const lastBodies: { plan?: Record<string, unknown>, section?: Record<string, unknown>, image?: Record<string, unknown> } = {}
  const requests: Record<Endpoint | 'metadata' | 'storage', number> = { llm: 0, image: 0, sentiment: 0, entities: 0, metadata: 0, storage: 0 }
  // Uploaded objects, served back at /BUCKET/NAME; the oldest go first past MAX_OBJECTS.
  const objects = new Map<string, { data: Buffer, contentType: string }>()
  // Only sockets that carried a provider call count as "upstream connections", so a test's own
  // requests to /__sim/stats never show up as the service's pool.
  const apiSockets = new Set<EventEmitter>()
  const counters = { accepted: 0, peak: 0, inFlight: 0, peakInFlight: 0, peakStreamsPerConnection: 0, chaos: 0 }
  // HTTP/2 streams in flight on each connection.
  const callsOn = new Map<EventEmitter, number>()
  // Provider calls by the protocol they came over: HTTP/2 streams share connections.
  const protocols = { 'http/1.1': 0, h2: 0 }
  let chaos = options.chaos
  const pending = new Set<AbortController>()
  let origin = ''

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) send(res, 500, { error: { message: String(error) } })
    })
  }
  const keepAliveTimeoutMs = options.keepAliveTimeoutMs ?? 5_000
  // Node's HTTP/2 compatibility API gives handlers the HTTP/1.1 shapes; connectionOf() and
  // resetAnswer() cover where they differ. The keep-alive applies to HTTP/1.1; an idle HTTP/2
  // session stays until the client closes it (undici does after its own keep-alive timeout).
  const server = options.tls === undefined
    ? createServer(onRequest)
    : createSecureServer({ ...options.tls, allowHTTP1: true }, onRequest as never)
  if ('keepAliveTimeout' in server) server.keepAliveTimeout = keepAliveTimeoutMs
  const sockets = new Set<Socket>()
  // Every TCP connection, TLS or not (destroying the TCP socket ends the TLS one over it).
  server.on('connection', (socket: Socket) => {
    counters.accepted++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })

  function stats () {
    return { connections: { accepted: counters.accepted, open: apiSockets.size, peak: counters.peak }, requests: { ...requests }, inFlight: counters.inFlight, peakInFlight: counters.peakInFlight, peakStreamsPerConnection: counters.peakStreamsPerConnection, chaosFaults: counters.chaos, protocols: { ...protocols } }
  }

  async function handle (req: IncomingMessage, res: ServerResponse) {
    const { pathname } = new URL(req.url ?? '/', 'http://simulator')
    if (req.method === 'GET' && pathname === '/__sim/stats') return send(res, 200, stats())
    if (req.method === 'GET' && pathname.startsWith('/__sim/images/')) return serveImage(pathname, res)
    if (req.method === 'GET' && pathname === METADATA_TOKEN_PATH) return metadataToken(req, res)
    if (req.method === 'POST' && pathname.startsWith('/upload/storage/v1/b/')) return upload(req, res)
    const object = req.method === 'GET' ? objects.get(decodeURIComponent(pathname.slice(1))) : undefined
    if (object !== undefined) return sendBytes(res, object.data, object.contentType)
    const imagen = IMAGEN_PREDICT.test(pathname)
    const endpoint = req.method === 'POST' ? ROUTES[pathname] ?? (VERTEX_CHAT.test(pathname) ? 'llm' : imagen ? 'image' : undefined) : undefined
    if (endpoint === undefined) return send(res, 404, { error: { message: `no route for ${req.method} ${pathname}` } })

    const connection = connectionOf(req)
    countApiSocket(connection)
    protocols[req.httpVersion === '2.0' ? 'h2' : 'http/1.1']++
    requests[endpoint]++
    counters.peakInFlight = Math.max(counters.peakInFlight, ++counters.inFlight)
    // HTTP/2 streams in flight on this connection (HTTP/1.1 carries one call at a time).
    const multiplexed = req.httpVersion === '2.0'
    if (multiplexed) {
      const onConnection = (callsOn.get(connection) ?? 0) + 1
      callsOn.set(connection, onConnection)
      counters.peakStreamsPerConnection = Math.max(counters.peakStreamsPerConnection, onConnection)
    }
    const record: CallRecord = { endpoint, kind: undefined, startedAt: performance.now(), endedAt: undefined, aborted: false, headers: req.headers }
    calls.push(record)
    if (calls.length > MAX_CALL_RECORDS) calls.shift()
    const controller = new AbortController()
    pending.add(controller)
    // A call has left once its answer is sent ('finish') or abandoned ('close'): over HTTP/1.1 the
    // next call on a kept-alive socket can arrive before this answer's 'close'.
    let onIt = true
    const leave = () => {
      if (!onIt) return
      onIt = false
      counters.inFlight--
      if (!multiplexed) return
      const left = callsOn.get(connection)! - 1
      if (left === 0) callsOn.delete(connection)
      else callsOn.set(connection, left)
    }
    res.once('finish', leave)
    res.once('close', () => {
      leave()
      record.endedAt = performance.now()
      record.aborted = !res.writableFinished
      pending.delete(controller)
      controller.abort()
    })

    try {
      // Latency is the time from the request's arrival to the answer, as a caller sees a real
      // provider's: the simulator's own work is part of it, not added on top.
      const deadline = record.startedAt + delayFor(latency[endpoint])
      const body = await readJson(req)
      if (endpoint === 'llm') {
        record.kind = llmKind(body)
        lastBodies[record.kind] = body
      }
      if (endpoint === 'image') lastBodies.image = body
      const headerFault = req.headers['x-sim-fault']
      let fault = typeof headerFault === 'string' ? parseFault(headerFault) : faults[endpoint] ?? {}
      if (fault.kind !== undefined && fault.kind !== record.kind) fault = {}
      if (fault.times !== undefined && typeof headerFault !== 'string' && faultHits[endpoint]++ >= fault.times) fault = {}
      if (Object.keys(fault).length === 0) {
        const drawn = drawFault(chaos)
        if (drawn !== undefined) {
          counters.chaos++
          fault = drawn
        }
      }
      if (fault.quota) fault = { ...fault, status: 429 }
      if (endpoint === 'llm' && fault.status === undefined) return await llm(req, res, body, fault, deadline, record.kind!, controller.signal)
      const answer = fault.status === undefined ? (imagen ? imagenPrediction(body, req) : answerFor(endpoint, body, req)) : undefined
      const paced = endpoint === 'image' ? options.pace?.imageMs ?? 0 : endpoint === 'llm' ? 0 : options.pace?.languageMs ?? 0
      const wait = deadline + paced - performance.now() + (fault.delayMs ?? 0)
      if (wait > 0) await sleep(wait, undefined, { signal: controller.signal })
      if (fault.hang) return
      if (fault.reset === 'headers') {
        resetAnswer(req)
        return
      }
      if (fault.status !== undefined || answer === undefined) return sendProviderError(res, endpoint, fault.status ?? 500, fault)
      if (fault.malformed) return sendRaw(res, 200, '{"choices": [{"message": {"content": "trunc')
      if (fault.oversizeBytes !== undefined) return sendOversize(res, fault.oversizeBytes)
      if (fault.wrongShape) return send(res, 200, wrongShape(answer, undefined))
      if (fault.reset === 'body' || fault.hangBody) return sendHalf(res, JSON.stringify(answer), fault.reset === 'body')
      send(res, 200, answer)
    } catch (error) {
      if (controller.signal.aborted) return
      if (error instanceof HttpError) return sendProviderError(res, endpoint, error.status, {}, error.message)
      if (error instanceof Error && error.name === 'FaultSpecError') return send(res, 400, { error: { message: error.message } })
      throw error
    }
  }

  // Chat Completions, whole or streamed, at the configured pace.
  async function llm (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, fault: Fault, deadline: number, kind: LlmKind, signal: AbortSignal) {
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) throw new HttpError(401, 'missing bearer token')
    const written = chatContent(body)
    let content = written.content
    if (fault.hostile !== undefined) content = hostileContent(content, body, fault.hostile)
    if (fault.wrongShape && kind === 'plan') content = '{"headline":"?"}'
    const stream = body.stream === true
    const wait = deadline - performance.now() + (fault.delayMs ?? 0) + (stream ? 0 : writingMs(options.pace, content))
    if (wait > 0) await sleep(wait, undefined, { signal })
    if (fault.hang) return
    if (fault.reset === 'headers') return resetAnswer(req)
    if (fault.oversizeBytes !== undefined) return sendOversize(res, fault.oversizeBytes)
    if (stream) {
      const includeUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true
      return await streamChat(res, { model: String(body.model), content, promptTokens: written.promptTokens, includeUsage, pace: options.pace, fault, signal })
    }
    const answer = chatCompletion(body, content, written.promptTokens)
    if (fault.malformed) return sendRaw(res, 200, '{"choices": [{"message": {"content": "trunc')
    if (fault.wrongShape && kind === 'section') return send(res, 200, wrongShape(answer, kind))
    if (fault.reset === 'body' || fault.hangBody) return sendHalf(res, JSON.stringify(answer), fault.reset === 'body')
    send(res, 200, answer)
  }

  function answerFor (endpoint: Endpoint, body: Record<string, unknown>, req: IncomingMessage) {
    if (endpoint === 'image') {
      if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) throw new HttpError(401, 'missing bearer token')
    }
    switch (endpoint) {
      case 'llm': throw new Error('llm calls are answered by llm()')
      case 'image': return images(body)
      case 'sentiment': {
        const { content, language } = documentOf(body)
        const result = analyzeSentiment(content)
        return applyFieldMask({
          documentSentiment: { magnitude: result.magnitude, score: result.score },
          language,
          sentences: result.sentences.map((s) => ({ text: { content: s.text, beginOffset: s.beginOffset }, sentiment: { magnitude: s.magnitude, score: s.score } }))
        }, req.headers['x-goog-fieldmask'])
      }
      case 'entities': {
        const { content, language } = documentOf(body)
        return applyFieldMask({
          entities: extractEntities(content).map((entity) => ({
            name: entity.name,
            type: 'OTHER',
            metadata: {},
            salience: entity.salience,
            mentions: entity.offsets.map((beginOffset) => ({ text: { content: entity.name, beginOffset }, type: 'COMMON' }))
          })),
          language
        }, req.headers['x-goog-fieldmask'])
      }
    }
  }

  function countApiSocket (connection: EventEmitter) {
    if (apiSockets.has(connection)) return
    apiSockets.add(connection)
    connection.once('close', () => apiSockets.delete(connection))
    counters.peak = Math.max(counters.peak, apiSockets.size)
  }

  // The metadata server's token endpoint, as Cloud Run serves it to the service account.
  function metadataToken (req: IncomingMessage, res: ServerResponse) {
    countApiSocket(connectionOf(req))
    if (req.headers['metadata-flavor'] !== 'Google') return send(res, 403, { error: 'Missing Metadata-Flavor:Google header.' })
    requests.metadata++
    send(res, 200, { access_token: `sim-token-${requests.metadata}`, expires_in: 3599, token_type: 'Bearer' })
  }

  // Cloud Storage JSON API, simple upload.
  async function upload (req: IncomingMessage, res: ServerResponse) {
    countApiSocket(connectionOf(req))
    const url = new URL(req.url ?? '/', 'http://simulator')
    const bucket = decodeURIComponent(url.pathname.split('/')[5] ?? '')
    const name = url.searchParams.get('name')
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) return send(res, 401, { error: { code: 401, message: 'Anonymous caller does not have storage.objects.create access.' } })
    if (url.searchParams.get('uploadType') !== 'media' || name === null || bucket === '') return send(res, 400, { error: { code: 400, message: 'uploadType=media and name are required.' } })
    requests.storage++
    const data = await readBytes(req)
    objects.set(`${bucket}/${name}`, { data, contentType: req.headers['content-type'] ?? 'application/octet-stream' })
    if (objects.size > MAX_OBJECTS) objects.delete(objects.keys().next().value!)
    send(res, 200, { kind: 'storage#object', name, bucket, size: String(data.length), contentType: req.headers['content-type'] })
  }

  function images (body: Record<string, unknown>) {
    if (typeof body.prompt !== 'string' || body.prompt === '') throw new HttpError(400, 'prompt is required')
    if (typeof body.model !== 'string') throw new HttpError(400, 'model is required')
    const id = imageId(body.prompt)
    const created = Math.floor(Date.now() / 1000)
    if (imageFormat === 'b64') return { created, data: [{ b64_json: pngImage(id).toString('base64') }] }
    return { created, data: [{ url: `${origin}/__sim/images/${id}.svg`, revised_prompt: body.prompt }] }
  }

  // Imagen answers in base64 whatever imageFormat says: it has no URL form.
  function imagenPrediction (body: Record<string, unknown>, req: IncomingMessage) {
    if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) throw new HttpError(401, 'missing bearer token')
    const prompt = (body.instances as Array<{ prompt?: unknown }> | undefined)?.[0]?.prompt
    if (typeof prompt !== 'string' || prompt === '') throw new HttpError(400, 'instances[0].prompt is required')
    const parameters = body.parameters as { sampleCount?: unknown, aspectRatio?: unknown } | undefined
    if (parameters?.sampleCount !== undefined && parameters.sampleCount !== 1) throw new HttpError(400, 'the simulator draws one sample')
    if (parameters?.aspectRatio !== undefined && !['1:1', '3:4', '4:3', '9:16', '16:9'].includes(String(parameters.aspectRatio))) throw new HttpError(400, `aspectRatio ${String(parameters.aspectRatio)} is not supported`)
    return { predictions: [{ bytesBase64Encoded: pngImage(imageId(prompt)).toString('base64'), mimeType: 'image/png' }] }
  }

  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve(server.address() as AddressInfo))
  })
  origin = `${options.tls === undefined ? 'http' : 'https'}://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`

  return {
    origin,
    port: address.port,
    calls,
    lastBodies,
    stats,
    setFault (endpoint: Endpoint, fault: Fault | undefined) {
      faults[endpoint] = fault
      faultHits[endpoint] = 0
    },
    setLatency (endpoint: Endpoint, value: Latency | undefined) { latency[endpoint] = value },
    setChaos (value: Chaos | undefined) { chaos = value },
    async close () {
      for (const controller of pending) controller.abort()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export type Simulator = Awaited<ReturnType<typeof startSimulator>>

function documentOf (body: Record<string, unknown>) {
  const document = body.document as { type?: unknown, content?: unknown, language?: unknown } | undefined
  if (document?.type !== 'PLAIN_TEXT' || typeof document.content !== 'string' || document.content === '') {
    throw new HttpError(400, 'document.type must be PLAIN_TEXT and document.content a non-empty string')
  }
  return { content: document.content, language: typeof document.language === 'string' ? document.language : 'en' }
}

function delayFor (latency: Latency | undefined) {
  if (latency === undefined) return 0
  return latency.fixedMs + Math.random() * latency.jitterMs
}
