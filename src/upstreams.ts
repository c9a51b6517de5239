import type { Config, Env } from './config.ts'
import { deepFreeze } from './env.ts'

// Which provider each upstream kind talks to, at which URL and with which credential: from the
// parsed environment in live mode, or the bundled simulator's one origin.

const LIVE_REQUIRED = ['LLM_BASE_URL', 'LLM_MODEL', 'IMAGE_BASE_URL', 'IMAGE_API_KEY', 'IMAGE_MODEL'] as const

// aiplatform.googleapis.com and its regional hosts, such as europe-west1-aiplatform.googleapis.com.
const VERTEX_AI = /(^|[.-])aiplatform\.googleapis\.com$/

/** On Cloud Run (K_SERVICE) or with an explicit metadata server, Google credentials come from it. */
export function onGoogleCloud (env: { K_SERVICE?: string | undefined, GCE_METADATA_HOST?: string | undefined }) {
  return env.K_SERVICE !== undefined || env.GCE_METADATA_HOST !== undefined
}

const isVertex = (url: string | undefined) => url !== undefined && URL.canParse(url) && VERTEX_AI.test(new URL(url).hostname)

/** The live-mode variables that must be set, given where the service runs and what it calls. */
export function requiredLiveVariables (env: { K_SERVICE?: string | undefined, GCE_METADATA_HOST?: string | undefined, LLM_BASE_URL?: string | undefined, LLM_FALLBACK_BASE_URL?: string | undefined, IMAGE_FALLBACK_BASE_URL?: string | undefined }) {
  const google = onGoogleCloud(env)
  return [
    ...LIVE_REQUIRED,
    // Without a key, Natural Language and Vertex AI take the service account's token instead.
    ...(google && isVertex(env.LLM_BASE_URL) ? [] : ['LLM_API_KEY'] as const),
    ...(google ? [] : ['LANGUAGE_API_KEY'] as const),
    // A fallback LLM is optional; once its URL is set, it needs a model, and a key unless it is
    // Vertex AI on Google Cloud.
    ...(env.LLM_FALLBACK_BASE_URL === undefined ? [] : ['LLM_FALLBACK_MODEL'] as const),
    ...(env.LLM_FALLBACK_BASE_URL === undefined || (google && isVertex(env.LLM_FALLBACK_BASE_URL)) ? [] : ['LLM_FALLBACK_API_KEY'] as const),
    // The same for the image fallback, Imagen.
    ...(env.IMAGE_FALLBACK_BASE_URL === undefined ? [] : ['IMAGE_FALLBACK_MODEL'] as const),
    ...(env.IMAGE_FALLBACK_BASE_URL === undefined || (google && isVertex(env.IMAGE_FALLBACK_BASE_URL)) ? [] : ['IMAGE_FALLBACK_API_KEY'] as const)
  ]
}

/**
 * The provider's name for labels and warnings, as OpenTelemetry's gen_ai.provider.name spells the
 * well-known ones; any other endpoint is named by its host.
 */
export function providerName (baseUrl: string) {
  const { host, hostname } = new URL(baseUrl)
  if (VERTEX_AI.test(hostname)) return 'gcp.vertex_ai'
  if (hostname === 'generativelanguage.googleapis.com') return 'gcp.gemini'
  if (hostname === 'api.openai.com') return 'openai'
  if (hostname.endsWith('.openai.azure.com')) return 'azure.ai.openai'
  return host
}

export interface UpstreamTarget {
  readonly baseUrl: string
  readonly apiKey: string | undefined
  readonly model: string
  /** LLM only: the cap sent as max_completion_tokens. */
  readonly maxCompletionTokens?: number
}

export interface ImagenTarget extends UpstreamTarget {
  readonly provider: string
  /** Imagen's nearest aspect ratio to IMAGE_SIZE: it takes a ratio, not a size. */
  readonly aspectRatio: string
  readonly maxBytes: number
}

export interface LlmTarget extends UpstreamTarget {
  /** providerName() of its base URL: the label on its usage, metrics and fallback warnings. */
  readonly provider: string
}

export interface Upstreams {
  readonly llm: LlmTarget
  /** Where an LLM call goes when the primary fails it before any token (LLM_FALLBACK_*). */
  readonly llmFallback: LlmTarget | undefined
  readonly image: UpstreamTarget & { readonly size: string, readonly maxBytes: number, readonly urlOrigins: readonly string[] }
  /** Vertex AI Imagen, where the image goes when the primary fails it (IMAGE_FALLBACK_*). */
  readonly imageFallback: ImagenTarget | undefined
  readonly language: Omit<UpstreamTarget, 'model'>
  /** Where base64 images are uploaded, when IMAGE_BUCKET is set. */
  readonly storage: { readonly baseUrl: string, readonly bucket: string } | undefined
  /** The metadata server that issues the service account's tokens, on Google Cloud. */
  readonly metadataHost: string | undefined
}

export function liveUpstreams (env: Env): Upstreams {
  // superRefine has checked that every LIVE_REQUIRED name is present.
  return {
    llm: { baseUrl: env.LLM_BASE_URL!, apiKey: env.LLM_API_KEY, model: env.LLM_MODEL!, maxCompletionTokens: env.LLM_MAX_COMPLETION_TOKENS, provider: providerName(env.LLM_BASE_URL!) },
    llmFallback: env.LLM_FALLBACK_BASE_URL === undefined
      ? undefined
      : {
          baseUrl: env.LLM_FALLBACK_BASE_URL,
          apiKey: env.LLM_FALLBACK_API_KEY,
          model: env.LLM_FALLBACK_MODEL!,
          maxCompletionTokens: env.LLM_MAX_COMPLETION_TOKENS,
          // Two OpenAI-compatible endpoints on one host still get two names.
          provider: distinct(providerName(env.LLM_FALLBACK_BASE_URL), providerName(env.LLM_BASE_URL!))
        },
    image: {
      baseUrl: env.IMAGE_BASE_URL!,
      apiKey: env.IMAGE_API_KEY,
      model: env.IMAGE_MODEL!,
      size: env.IMAGE_SIZE,
      maxBytes: env.IMAGE_MAX_BYTES,
      urlOrigins: [new URL(env.IMAGE_BASE_URL!).origin, ...(env.IMAGE_BUCKET === undefined ? [] : [new URL(env.STORAGE_BASE_URL ?? 'https://storage.googleapis.com').origin]), ...env.IMAGE_URL_ORIGINS]
    },
    imageFallback: env.IMAGE_FALLBACK_BASE_URL === undefined
      ? undefined
      : {
          baseUrl: env.IMAGE_FALLBACK_BASE_URL,
          apiKey: env.IMAGE_FALLBACK_API_KEY,
          model: env.IMAGE_FALLBACK_MODEL!,
          provider: providerName(env.IMAGE_FALLBACK_BASE_URL),
          aspectRatio: aspectRatio(env.IMAGE_SIZE),
          maxBytes: env.IMAGE_MAX_BYTES
        },
    language: { baseUrl: env.LANGUAGE_BASE_URL ?? 'https://language.googleapis.com', apiKey: env.LANGUAGE_API_KEY },
    storage: env.IMAGE_BUCKET === undefined ? undefined : { baseUrl: env.STORAGE_BASE_URL ?? 'https://storage.googleapis.com', bucket: env.IMAGE_BUCKET },
    metadataHost: onGoogleCloud(env) ? env.GCE_METADATA_HOST ?? 'metadata.google.internal' : undefined
  }
}

/** Upstreams for the bundled simulator, which speaks every provider's wire format on one origin. */
export function simulatorUpstreams (config: Config, origin: string): Upstreams {
  return deepFreeze({
    llm: { baseUrl: `${origin}/v1`, apiKey: 'simulator', model: config.llm.model ?? 'simulator-llm', maxCompletionTokens: config.llm.maxCompletionTokens, provider: 'simulator' },
    llmFallback: undefined,
    imageFallback: undefined,
    image: { baseUrl: `${origin}/v1`, apiKey: 'simulator', model: config.image.model ?? 'simulator-image', size: config.image.size, maxBytes: config.image.maxBytes, urlOrigins: [origin, ...config.image.urlOrigins] },
    language: { baseUrl: origin, apiKey: undefined },
    // The simulator also plays the metadata server and Cloud Storage, so those paths run locally too.
    storage: config.image.bucket === undefined ? undefined : { baseUrl: origin, bucket: config.image.bucket },
    metadataHost: new URL(origin).host
  })
}

// The ratios Imagen accepts (cloud.google.com/vertex-ai/generative-ai/docs/image/configure-aspect-ratio).
const IMAGEN_RATIOS = ['1:1', '3:4', '4:3', '9:16', '16:9'] as const

/** The Imagen ratio nearest to a WIDTHxHEIGHT size, by the logarithm of width over height. */
export function aspectRatio (size: string) {
  const [width, height] = size.split('x').map(Number) as [number, number]
  const distance = (ratio: string) => {
    const [w, h] = ratio.split(':').map(Number) as [number, number]
    return Math.abs(Math.log(width / height) - Math.log(w / h))
  }
  return IMAGEN_RATIOS.reduce((best, ratio) => distance(ratio) < distance(best) ? ratio : best)
}

const distinct = (name: string, taken: string) => name === taken ? `${name} (fallback)` : name
