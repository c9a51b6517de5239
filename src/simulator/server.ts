import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { countTokens, editDraft, writeDraft, type EditMaterial, type SimBrief } from './content.ts'
import { parseFault, type Endpoint, type Fault } from './faults.ts'
import { imageId, pngImage, svgImage } from './images.ts'
import { extractEntities } from './keywords.ts'
import { analyzeSentiment } from './sentiment.ts'

export interface Latency { fixedMs: number, jitterMs: number }

export interface SimulatorOptions {
  port?: number
  host?: string
  latency?: Partial<Record<Endpoint, Latency>>
  faults?: Partial<Record<Endpoint, Fault>>
  /** How the image endpoint answers: a URL it serves, or base64 as current image models do. */
  imageFormat?: 'url' | 'b64'
  keepAliveTimeoutMs?: number
}

export interface CallRecord {
  endpoint: Endpoint
  kind: 'draft' | 'edit' | undefined
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
const MAX_REQUEST_BYTES = 10 * 1024 * 1024
const MAX_CALL_RECORDS = 1_000
const MAX_OBJECTS = 100
const METADATA_TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token'

class HttpError extends Error {
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
  }
}

export async function startSimulator (options: SimulatorOptions = {}) {
  const latency = { ...options.latency }
  const faults = { ...options.faults }
  const faultHits: Record<Endpoint, number> = { llm: 0, image: 0, sentiment: 0, entities: 0 }
  const imageFormat = options.imageFormat ?? 'url'
  const calls: CallRecord[] = []
  // The last body of each LLM call kind, so tests can read exactly what the service sent.
  const lastBodies: { draft?: Record<string, unknown>, edit?: Record<string, unknown> } = {}
  const requests: Record<Endpoint | 'metadata' | 'storage', number> = { llm: 0, image: 0, sentiment: 0, entities: 0, metadata: 0, storage: 0 }
  // Uploaded objects, served back at /BUCKET/NAME; the oldest go first past MAX_OBJECTS.
  const objects = new Map<string, { data: Buffer, contentType: string }>()
  // Only sockets that carried a provider call count as "upstream connections", so a test's own
  // requests to /__sim/stats never show up as the service's pool.
  const apiSockets = new Set<Socket>()
  const counters = { accepted: 0, peak: 0, inFlight: 0 }
  const pending = new Set<AbortController>()
  let origin = ''

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) send(res, 500, { error: { message: String(error) } })
    })
  })
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000
  server.on('connection', (socket) => {
    counters.accepted++
    socket.once('close', () => apiSockets.delete(socket))
  })

  function stats () {
    return { connections: { accepted: counters.accepted, open: apiSockets.size, peak: counters.peak }, requests: { ...requests }, inFlight: counters.inFlight }
  }

  async function handle (req: IncomingMessage, res: ServerResponse) {
    const { pathname } = new URL(req.url ?? '/', 'http://simulator')
    if (req.method === 'GET' && pathname === '/__sim/stats') return send(res, 200, stats())
    if (req.method === 'GET' && pathname.startsWith('/__sim/images/')) return serveImage(pathname, res)
    if (req.method === 'GET' && pathname === METADATA_TOKEN_PATH) return metadataToken(req, res)
    if (req.method === 'POST' && pathname.startsWith('/upload/storage/v1/b/')) return upload(req, res)
    const object = req.method === 'GET' ? objects.get(decodeURIComponent(pathname.slice(1))) : undefined
    if (object !== undefined) return sendBytes(res, object.data, object.contentType)
    const endpoint = req.method === 'POST' ? ROUTES[pathname] : undefined
    if (endpoint === undefined) return send(res, 404, { error: { message: `no route for ${req.method} ${pathname}` } })

    countApiSocket(req.socket)
    requests[endpoint]++
    counters.inFlight++
    const record: CallRecord = { endpoint, kind: undefined, startedAt: performance.now(), endedAt: undefined, aborted: false, headers: req.headers }
    calls.push(record)
    if (calls.length > MAX_CALL_RECORDS) calls.shift()
    const controller = new AbortController()
    pending.add(controller)
    res.once('close', () => {
      counters.inFlight--
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
      const headerFault = req.headers['x-sim-fault']
      let fault = typeof headerFault === 'string' ? parseFault(headerFault) : faults[endpoint] ?? {}
      if (fault.kind !== undefined && fault.kind !== record.kind) fault = {}
      if (fault.times !== undefined && typeof headerFault !== 'string' && faultHits[endpoint]++ >= fault.times) fault = {}
      if (fault.quota) fault = { ...fault, status: 429 }
      const answer = fault.status === undefined ? answerFor(endpoint, body, req) : undefined
      const wait = deadline - performance.now() + (fault.delayMs ?? 0)
      if (wait > 0) await sleep(wait, undefined, { signal: controller.signal })
      if (fault.hang) return
      if (fault.reset === 'headers') {
        req.socket.destroy()
        return
      }
      if (fault.status !== undefined || answer === undefined) return sendProviderError(res, endpoint, fault.status ?? 500, fault)
      if (fault.malformed) return sendRaw(res, 200, '{"choices": [{"message": {"content": "trunc')
      if (fault.oversizeBytes !== undefined) return sendOversize(res, fault.oversizeBytes)
      if (fault.wrongShape) return send(res, 200, wrongShape(answer))
      if (fault.hostile !== undefined && endpoint === 'llm') return send(res, 200, hostile(answer, body, fault.hostile))
      if (fault.reset === 'body' || fault.hangBody) return sendHalf(res, JSON.stringify(answer), fault.reset === 'body')
      send(res, 200, answer)
    } catch (error) {
      if (controller.signal.aborted) return
      if (error instanceof HttpError) return sendProviderError(res, endpoint, error.status, {}, error.message)
      if (error instanceof Error && error.name === 'FaultSpecError') return send(res, 400, { error: { message: error.message } })
      throw error
    }
  }

  function answerFor (endpoint: Endpoint, body: Record<string, unknown>, req: IncomingMessage) {
    if (endpoint === 'llm' || endpoint === 'image') {
      if (!/^Bearer \S+/.test(req.headers.authorization ?? '')) throw new HttpError(401, 'missing bearer token')
    }
    switch (endpoint) {
      case 'llm': return chatCompletion(body)
      case 'image': return images(body)
      case 'sentiment': {
        const { content, language } = documentOf(body)
        const result = analyzeSentiment(content)
        return {
          documentSentiment: { magnitude: result.magnitude, score: result.score },
          language,
          sentences: result.sentences.map((s) => ({ text: { content: s.text, beginOffset: s.beginOffset }, sentiment: { magnitude: s.magnitude, score: s.score } }))
        }
      }
      case 'entities': {
        const { content, language } = documentOf(body)
        return {
          entities: extractEntities(content).map((entity) => ({
            name: entity.name,
            type: 'OTHER',
            metadata: {},
            salience: entity.salience,
            mentions: entity.offsets.map((beginOffset) => ({ text: { content: entity.name, beginOffset }, type: 'COMMON' }))
          })),
          language
        }
      }
    }
  }

  function countApiSocket (socket: Socket) {
    if (apiSockets.has(socket)) return
    apiSockets.add(socket)
    counters.peak = Math.max(counters.peak, apiSockets.size)
  }

  // The metadata server's token endpoint, as Cloud Run serves it to the service account.
  function metadataToken (req: IncomingMessage, res: ServerResponse) {
    countApiSocket(req.socket)
    if (req.headers['metadata-flavor'] !== 'Google') return send(res, 403, { error: 'Missing Metadata-Flavor:Google header.' })
    requests.metadata++
    send(res, 200, { access_token: `sim-token-${requests.metadata}`, expires_in: 3599, token_type: 'Bearer' })
  }

  // Cloud Storage JSON API, simple upload.
  async function upload (req: IncomingMessage, res: ServerResponse) {
    countApiSocket(req.socket)
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

  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve(server.address() as AddressInfo))
  })
  origin = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`

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
    async close () {
      for (const controller of pending) controller.abort()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export type Simulator = Awaited<ReturnType<typeof startSimulator>>

type ResponseFormat = { type?: string, json_schema?: { schema?: { properties?: Record<string, unknown> } } } | undefined

function llmKind (body: Record<string, unknown>) {
  const format = body.response_format as ResponseFormat
  return format?.type === 'json_schema' || format?.type === 'json_object' ? 'edit' : 'draft'
}

// Valid JSON in a shape no client expects: an edit whose fields are missing, or an empty answer.
function wrongShape (answer: Record<string, unknown>) {
  const choices = answer.choices as Array<{ message: { content: string } }> | undefined
  if (choices?.[0] !== undefined) return { ...answer, choices: [{ ...choices[0], message: { role: 'assistant', content: '{"headline":"?"}' } }] }
  return { unexpected: true }
}

const HOSTILE_MARKDOWN = '\n\n<script>alert(1)</script><img src=x onerror="alert(2)">\n\n' +
  '[click me](javascript:alert(3)) [data](data:text/html,<b>x</b>) [encoded](jav&#x61;script:alert(4)) <javascript:alert(5)>\n\n' +
  '![tracker](https://evil.example/pixel.png) [a real link](https://example.com/page)\n\n<!-- hidden -->'

// What a compromised or prompt-injected model might answer: markup, script links, foreign images,
// and with "echo" its own system prompt.
function hostile (answer: Record<string, unknown>, request: Record<string, unknown>, mode: 'markup' | 'echo') {
  const choices = answer.choices as Array<{ message: { content: string } }>
  const content = choices[0]!.message.content
  const system = String((request.messages as Array<{ role: string, content: string }>).find((m) => m.role === 'system')?.content ?? '')
  const extra = HOSTILE_MARKDOWN + (mode === 'echo' ? `\n\n${system}` : '')
  let changed: string
  try {
    const edit = JSON.parse(content) as Record<string, string>
    changed = JSON.stringify({ ...edit, title: `<b>${edit.title}</b><script>x()</script>`, body: `${edit.body}${extra}`, imageAlt: `${edit.imageAlt}" onload="x()` })
  } catch {
    changed = content + extra
  }
  return { ...answer, choices: [{ ...choices[0], message: { role: 'assistant', content: changed } }] }
}

function chatCompletion (body: Record<string, unknown>) {
  const messages = body.messages
  if (typeof body.model !== 'string') throw new HttpError(400, 'model is required')
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(400, 'messages must be a non-empty array')
  const prompt = messages.map((message: { content?: unknown }) => String(message?.content ?? '')).join('\n')
  const lastUser = String(messages.findLast((message: { role?: unknown }) => message?.role === 'user')?.content ?? '')
  const format = body.response_format as ResponseFormat

  let content: string
  if (llmKind(body) === 'edit') {
    const material = dataBlock<EditMaterial>(lastUser, 'material') ?? { brief: { topic: lastUser.slice(0, 200) }, draft: lastUser }
    const properties = Object.keys(format?.json_schema?.schema?.properties ?? { title: 1, metaDescription: 1, body: 1, imageAlt: 1 })
    content = JSON.stringify(editDraft(material, properties))
  } else {
    content = writeDraft(dataBlock<SimBrief>(lastUser, 'brief') ?? { topic: lastUser.slice(0, 200) || 'an untitled topic' })
  }
  const usage = { prompt_tokens: countTokens(prompt), completion_tokens: countTokens(content) }
  return {
    id: `chatcmpl-sim-${imageId(content).slice(0, 12)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens }
  }
}

function dataBlock<T> (text: string, tag: string): T | undefined {
  const match = new RegExp(`<${tag}>\\s*([\\s\\S]*?)\\s*</${tag}>`).exec(text)
  if (match === null) return undefined
  try {
    return JSON.parse(match[1]!) as T
  } catch {
    return undefined
  }
}

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

async function readBytes (req: IncomingMessage) {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_REQUEST_BYTES) throw new HttpError(413, 'request too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

async function readJson (req: IncomingMessage): Promise<Record<string, unknown>> {
  const bytes = await readBytes(req)
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'))
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  throw new HttpError(400, 'body must be a JSON object')
}

function send (res: ServerResponse, status: number, value: unknown) {
  sendRaw(res, status, JSON.stringify(value))
}

function sendRaw (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

// Error bodies in each provider's own format: OpenAI's for llm and image, Google's for language.
function sendProviderError (res: ServerResponse, endpoint: Endpoint, status: number, fault: Fault, message = 'injected fault') {
  const headers: Record<string, string> = {
    ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
    ...(fault.retryAfterMs === undefined ? {} : { 'retry-after-ms': fault.retryAfterMs })
  }
  const openAiType = fault.quota ? 'insufficient_quota' : status === 429 ? 'rate_limit_exceeded' : 'invalid_request_error'
  const body = endpoint === 'llm' || endpoint === 'image'
    ? { error: { message, type: openAiType, param: null, code: fault.quota ? 'insufficient_quota' : null } }
    : { error: { code: status, message, status: status === 429 ? 'RESOURCE_EXHAUSTED' : 'INVALID_ARGUMENT' } }
  sendRaw(res, status, JSON.stringify(body), headers)
}

function sendHalf (res: ServerResponse, text: string, reset: boolean) {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.write(text.slice(0, Math.floor(text.length / 2)))
  if (reset) setImmediate(() => res.socket?.destroy())
}

function sendOversize (res: ServerResponse, bytes: number) {
  // Streamed in chunks with backpressure, so a 50 MB answer does not cost the simulator 50 MB.
  const head = '{"padding":"'
  const tail = '"}'
  const total = Math.max(bytes, head.length + tail.length)
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': total })
  res.write(head)
  let remaining = total - head.length - tail.length
  const chunk = Buffer.alloc(64 * 1024, 'x')
  const pump = () => {
    while (remaining > 0) {
      const size = Math.min(remaining, chunk.length)
      remaining -= size
      if (!res.write(chunk.subarray(0, size))) {
        res.once('drain', pump)
        return
      }
    }
    res.end(tail)
  }
  pump()
}

function sendBytes (res: ServerResponse, data: Buffer, contentType: string) {
  res.writeHead(200, { 'content-type': contentType, 'content-length': data.length })
  res.end(data)
}

function serveImage (pathname: string, res: ServerResponse) {
  const match = /^\/__sim\/images\/([a-f0-9]{16,64})\.svg$/.exec(pathname)
  if (match === null) return send(res, 404, { error: { message: 'no such image' } })
  const svg = svgImage(match[1]!)
  res.writeHead(200, { 'content-type': 'image/svg+xml', 'content-length': Buffer.byteLength(svg), 'cache-control': 'public, max-age=31536000, immutable' })
  res.end(svg)
}
