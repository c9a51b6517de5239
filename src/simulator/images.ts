import { createHash } from 'node:crypto'
import { crc32, deflateSync } from 'node:zlib'

export function imageId (prompt: string) {
  return createHash('sha256').update(prompt).digest('hex').slice(0, 32)
}

function colours (id: string) {
  return [0, 6, 12].map((offset) => `#${id.slice(offset, offset + 6)}`)
}

/** A deterministic abstract picture for a prompt: the same prompt always draws the same image. */
export function svgImage (id: string) {
  const [a, b, c] = colours(id)
  const circles = Array.from({ length: 5 }, (_, index) => {
    const n = Number.parseInt(id.slice(index * 4, index * 4 + 4), 16)
    return `<circle cx="${n % 1024}" cy="${(n >> 4) % 1024}" r="${80 + (n % 160)}" fill="${c}" fill-opacity="0.35"/>`
  }).join('')
  return '<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024" viewBox="0 0 1024 1024">' +
    `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${a}"/><stop offset="1" stop-color="${b}"/></linearGradient></defs>` +
    `<rect width="1024" height="1024" fill="url(#g)"/>${circles}</svg>`
}

/** A small real PNG (64x64, a two-colour gradient), for answering as `b64_json`. */
export function pngImage (id: string, size = 64) {
  const [from = 0, to = 255] = [Number.parseInt(id.slice(0, 2), 16), Number.parseInt(id.slice(2, 4), 16)]
  const rows = Buffer.alloc(size * (1 + size * 3))
  for (let y = 0; y < size; y++) {
    const row = y * (1 + size * 3)
    for (let x = 0; x < size; x++) {
      const shade = Math.round(from + ((to - from) * (x + y)) / (2 * size))
      rows.set([shade, 255 - shade, 128], row + 1 + x * 3)
    }
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(size, 0)
  header.writeUInt32BE(size, 4)
  header.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))
  ])
}

function chunk (type: string, data: Buffer) {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(typed))
  return Buffer.concat([length, typed, crc])
}
