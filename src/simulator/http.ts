// The simulator's HTTP plumbing: bounded request reads, and answers in each provider's own error format.
import type { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import type { Endpoint, Fault } from './faults.ts'
import { svgImage } from './images.ts'

const MAX_REQUEST_BYTES = 10 * 1024 * 1024

/**
 * Over TLS the simulator answers HTTP/2 and HTTP/1.1 (ALPN picks). Node's compatibility API gives
 * an HTTP/2 request the shape of an HTTP/1.1 one; where the two differ (the socket), these say which.
 */
type AnyRequest = IncomingMessage | Http2ServerRequest
type AnyResponse = ServerResponse | Http2ServerResponse

/**
 * The connection that carried a request, one per TCP connection whatever the protocol: the socket,
 * or the HTTP/2 session (an HTTP/2 request's own socket is a proxy made per stream). Both emit
 * 'close' when the connection has gone.
 */
export function connectionOf (req: AnyRequest): EventEmitter {
  return 'stream' in req ? req.stream.session ?? req.stream : req.socket
}

/**
 * Resets the answer mid-way. Over HTTP/1.1 that is the socket; over HTTP/2 it is the stream
 * (RST_STREAM), as a provider's front end does, and the connection's other calls go on.
 */
export function resetAnswer (res: AnyResponse | AnyRequest) {
  if ('stream' in res) res.stream.close(h2.NGHTTP2_INTERNAL_ERROR)
  else res.socket?.destroy()
}

export class HttpError extends Error {
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
  }
}

export async function readBytes (req: IncomingMessage) {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_REQUEST_BYTES) throw new HttpError(413, 'request too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

export async function readJson (req: IncomingMessage): Promise<Record<string, unknown>> {
  const bytes = await readBytes(req)
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'))
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  throw new HttpError(400, 'body must be a JSON object')
}

export function send (res: ServerResponse, status: number, value: unknown) {
  sendRaw(res, status, JSON.stringify(value))
}

export function sendRaw (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

// Error bodies in each provider's own format: OpenAI's for llm and image, Google's for language.
export function sendProviderError (res: ServerResponse, endpoint: Endpoint, status: number, fault: Fault, message = 'injected fault') {
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

export function sendHalf (res: ServerResponse, text: string, reset: boolean) {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.write(text.slice(0, Math.floor(text.length / 2)))
  if (reset) setImmediate(() => resetAnswer(res))
}

export function sendOversize (res: ServerResponse, bytes: number) {
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

export function sendBytes (res: ServerResponse, data: Buffer, contentType: string) {
  res.writeHead(200, { 'content-type': contentType, 'content-length': data.length })
  res.end(data)
}

export function serveImage (pathname: string, res: ServerResponse) {
  const match = /^\/__sim\/images\/([a-f0-9]{16,64})\.svg$/.exec(pathname)
  if (match === null) return send(res, 404, { error: { message: 'no such image' } })
  const svg = svgImage(match[1]!)
  res.writeHead(200, { 'content-type': 'image/svg+xml', 'content-length': Buffer.byteLength(svg), 'cache-control': 'public, max-age=31536000, immutable' })
  res.end(svg)
}
