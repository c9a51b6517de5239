import { createHash, timingSafeEqual } from 'node:crypto'

export interface ApiKey { caller: string, sha256: string }

/** "name:sha256hex,name:sha256hex", as stored in the secret: the keys themselves are never held. */
export function parseApiKeys (list: string): ApiKey[] {
  return list.split(',').map((entry) => entry.trim()).filter(Boolean).map((entry) => {
    const [caller = '', hex = ''] = entry.split(':')
    if (caller === '' || !/^[0-9a-f]{64}$/i.test(hex)) throw new Error('expected name:sha256hex entries, comma-separated')
    return { caller, sha256: hex.toLowerCase() }
  })
}

/** The caller a presented key belongs to. Every stored hash is compared, in constant time each. */
export function callerForKey (keys: readonly ApiKey[], presented: string) {
  const digest = createHash('sha256').update(presented).digest()
  let caller: string | undefined
  for (const key of keys) {
    if (timingSafeEqual(digest, Buffer.from(key.sha256, 'hex')) && caller === undefined) caller = key.caller
  }
  return caller
}
