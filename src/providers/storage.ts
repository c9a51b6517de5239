import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { Upstreams } from '../config.ts'
import { requestJson, type CallContext } from './http.ts'

// Cloud Storage JSON API, simple upload: POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=NAME.
const objectResource = z.object({ name: z.string(), bucket: z.string() })

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' }

export interface StorageCall extends CallContext {
  target: NonNullable<Upstreams['storage']>
  token: () => Promise<string>
}

/** Uploads an image and returns its object URL. Named by content, so a retried upload is idempotent. */
export async function uploadImage (call: StorageCall, bytes: Buffer, contentType: string) {
  const { baseUrl, bucket } = call.target
  const name = `images/${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}.${EXTENSIONS[contentType] ?? 'bin'}`
  const object = await requestJson({
    dispatcher: call.dispatcher,
    upstream: 'storage',
    url: `${baseUrl}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=media&name=${encodeURIComponent(name)}`,
    method: 'POST',
    headers: { authorization: `Bearer ${await call.token()}` },
    bytes: { data: bytes, contentType },
    schema: objectResource,
    maxResponseBytes: 64 * 1024,
    signal: call.signal,
    guard: call.guard,
    deadlineAt: call.deadlineAt
  })
  return `${baseUrl}/${encodeURIComponent(object.bucket)}/${object.name.split('/').map(encodeURIComponent).join('/')}`
}
