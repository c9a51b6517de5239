import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'

export const AUDIENCE = 'https://content-engine.example'
export const CALLER = 'caller@project.iam.gserviceaccount.com'

/**
 * A local stand-in for Google's certificates endpoint, over a real socket: it counts its requests,
 * can rotate in a new key, can fail with 500, and can send Cache-Control as Google does.
 */
export async function googleKeys (t: TestContext, options: { cacheControl?: string } = {}) {
  const keys = new Map<string, { privateKey: CryptoKey, jwk: object }>()
  async function addKey (kid: string) {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    keys.set(kid, { privateKey, jwk: { ...await exportJWK(publicKey), kid, alg: 'RS256', use: 'sig' } })
  }
  await addKey('k1')
  let fetches = 0
  let failing = false
  const server = createServer((req, res) => {
    fetches++
    if (failing) return res.writeHead(500).end()
    res.writeHead(200, { 'content-type': 'application/json', ...(options.cacheControl === undefined ? {} : { 'cache-control': options.cacheControl }) })
      .end(JSON.stringify({ keys: [...keys.values()].map((key) => key.jwk) }))
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => { server.closeAllConnections(); server.close() })

  const sign = (claims: Record<string, unknown>, options: { audience?: string, expiresIn?: string | number, kid?: string } = {}) => {
    const kid = options.kid ?? 'k1'
    // A kid we never published is signed with k1's key: only the kid differs from a good token.
    const { privateKey } = keys.get(kid) ?? keys.get('k1')!
    return new SignJWT({ email: CALLER, email_verified: true, ...claims })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer('https://accounts.google.com')
      .setAudience(options.audience ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '5m')
      .sign(privateKey)
  }
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/v3/certs`,
    sign,
    addKey,
    fail: (value: boolean) => { failing = value },
    fetches: () => fetches
  }
}
