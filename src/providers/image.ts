import { z } from 'zod'
import type { Upstreams } from '../config.ts'
import { ServiceError } from '../errors.ts'
import { postJson, type CallContext } from './http.ts'
import { trimSlash } from './llm.ts'

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

  const bytes = Buffer.from(first.b64_json!, 'base64')
  if (bytes.length > target.maxBytes) {
    throw new ServiceError('upstream_response_too_large', {
      message: `The generated image is ${bytes.length} bytes, above IMAGE_MAX_BYTES (${target.maxBytes}).`,
      details: { upstream: 'image', bytes: bytes.length, limit: target.maxBytes }
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
