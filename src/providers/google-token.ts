import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { requestJson } from './http.ts'

const tokenAnswer = z.object({
  access_token: z.string().min(1),
  expires_in: z.number().int().positive(),
  token_type: z.string()
})

// Refresh this long before expiry, so a token never expires in flight.
const REFRESH_MARGIN_MS = 5 * 60_000

/**
 * The Cloud Run service account's OAuth token, from the metadata server (host as in Google's own
 * libraries' GCE_METADATA_HOST), fetched through the shared pool, cached until shortly before it
 * expires, and refreshed by one caller at a time: concurrent callers share the one fetch.
 */
export function createTokenSource (options: { dispatcher: () => Dispatcher, metadataHost: string, now?: () => number }) {
  const now = options.now ?? Date.now
  const url = `http://${options.metadataHost}/computeMetadata/v1/instance/service-accounts/default/token`
  let cached: { token: string, refreshAt: number } | undefined
  let inFlight: Promise<string> | undefined

  async function fetchToken () {
    const answer = await requestJson({
      dispatcher: options.dispatcher(),
      upstream: 'metadata',
      url,
      method: 'GET',
      headers: { 'metadata-flavor': 'Google' },
      schema: tokenAnswer,
      maxResponseBytes: 64 * 1024
    })
    cached = { token: answer.access_token, refreshAt: now() + answer.expires_in * 1000 - REFRESH_MARGIN_MS }
    return answer.access_token
  }

  return function token (): Promise<string> {
    if (cached !== undefined && now() < cached.refreshAt) return Promise.resolve(cached.token)
    // The fetch is not tied to any one caller's signal: a caller that leaves must not cancel it for the rest.
    inFlight ??= fetchToken().finally(() => { inFlight = undefined })
    return inFlight
  }
}

export type TokenSource = ReturnType<typeof createTokenSource>
