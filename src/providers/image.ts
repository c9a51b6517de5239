import { z } from 'zod'
import type { Upstreams } from '../config.ts'
import { ServiceError } from '../errors.ts'
import type { ImagenTarget } from '../upstreams.ts'
import type { TokenSource } from './google-token.ts'
import { postJson, type CallContext, type UpstreamName } from './http.ts'
import { bearer, trimSlash } from './llm.ts'

// OpenAI Images. DALL·E answers with `url`; newer models answer with `b64_json` only.
const imagesResponse = z.object({
  data: z.array(z.object({
    url: z.url({ protocol: /^https?$/ }).optional(),
    b64_json: z.base64().optional()
  }).refine((item) => item.url !== undefined || item.b64_json !== undefined, 'neither url nor b64_json')).min(1)
})

export interface ImageCall extends CallContext {
  target: Upstreams['image']
}

// base64 inflates by 4/3; the envelope around it is small.
const ENVELOPE_BYTES = 16 * 1024

export type GeneratedImage = { url: string } | { bytes: Buffer, contentType: string }

export async function generateImage (call: ImageCall, prompt: string): Promise<GeneratedImage> {
  const { target } = call
  const answer = await postJson({
    dispatcher: call.dispatcher,
    upstream: 'image',
    url: `${trimSlash(target.baseUrl)}/images/generations`,
    headers: target.apiKey === undefined ? {} : { authorization: `Bearer ${target.apiKey}` },
    body: { model: target.model, prompt, n: 1, size: target.size },
    schema: imagesResponse,
    maxResponseBytes: Math.ceil(target.maxBytes * 4 / 3) + ENVELOPE_BYTES,
    signal: call.signal,
    guard: call.guard,
    deadlineAt: call.deadlineAt
  })
  const first = answer.data[0]!
  if (first.url !== undefined) return { url: first.url }

  return decoded(first.b64_json!, target.maxBytes, 'image')
}

// Vertex AI Imagen's predict: one sample, answered in base64 (research notes, "Vertex AI Imagen").
const predictResponse = z.object({
  predictions: z.array(z.object({ bytesBase64Encoded: z.base64(), mimeType: z.string().optional() })).min(1)
})

export interface ImagenCall extends CallContext {
  target: ImagenTarget
  token?: TokenSource | undefined
}

/** The image from Imagen, where it goes when the primary image API fails it (IMAGE_FALLBACK_*). */
export async function generateImagen (call: ImagenCall, prompt: string): Promise<GeneratedImage> {
  const { target } = call
  const answer = await postJson({
    dispatcher: call.dispatcher,
    upstream: 'image.fallback',
    url: `${trimSlash(target.baseUrl)}/publishers/google/models/${encodeURIComponent(target.model)}:predict`,
    headers: await bearer(target.apiKey, call.token),
    body: { instances: [{ prompt }], parameters: { sampleCount: 1, aspectRatio: target.aspectRatio } },
    schema: predictResponse,
    maxResponseBytes: Math.ceil(target.maxBytes * 4 / 3) + ENVELOPE_BYTES,
    signal: call.signal,
    guard: call.guard,
    deadlineAt: call.deadlineAt
  })
  return decoded(answer.predictions[0]!.bytesBase64Encoded, target.maxBytes, 'image.fallback')
}

function decoded (base64: string, maxBytes: number, upstream: UpstreamName) {
  const bytes = Buffer.from(base64, 'base64')
  if (bytes.length > maxBytes) {
    throw new ServiceError('upstream_response_too_large', {
      message: `The generated image is ${bytes.length} bytes, above IMAGE_MAX_BYTES (${maxBytes}).`,
      details: { upstream, bytes: bytes.length, limit: maxBytes }
    })
  }
  return { bytes, contentType: sniffMediaType(bytes) }
}

export function dataUrl (image: { bytes: Buffer, contentType: string }) {
  return `data:${image.contentType};base64,${image.bytes.toString('base64')}`
}

function sniffMediaType (bytes: Buffer) {
  if (bytes.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47]))) return 'image/png'
  if (bytes.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff]))) return 'image/jpeg'
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'image/webp'
  if (bytes.toString('latin1', 0, 4) === 'GIF8') return 'image/gif'
  return 'application/octet-stream'
}
