import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { parseApiKeys } from './auth/api-keys.ts'
import { commaList, deepFreeze, duration, MS, optionalText, optionalUrl, parseEnv } from './env.ts'
import { telemetrySchema } from './telemetry/config.ts'
import { liveUpstreams, onGoogleCloud, requiredLiveVariables } from './upstreams.ts'
import { LENGTHS } from './generation/prompts.ts'

/**
 * The most calls one request has open at once on one origin: the sections of the longest post,
 * written in parallel, and its image, which on api.openai.com shares the LLM's origin. (Natural
 * Language peaks at four: two calls and their hedges.) A per-origin queue of MAX_CONCURRENT_REQUESTS
 * times this admits every call of every admitted request, so the per-origin limit never refuses
 * work the instance accepted. The queue holds a promise and a closure per call, a few hundred
 * bytes; sockets stay bounded by UPSTREAM_CONNECTIONS whatever its length.
 */
export const PEAK_CALLS_PER_ORIGIN = Math.max(...Object.values(LENGTHS).map((length) => length.sections)) + 1

// A CA file is read at start-up; say which variable names a missing or unreadable one, and what
// it should hold, rather than fail later with a bare ENOENT.
const caFile = optionalText.superRefine((path, ctx) => {
  if (path === undefined) return
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` })
    return
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) ctx.addIssue({ code: 'custom', message: `${path} holds no PEM certificate` })
})

export { ConfigError } from './env.ts'
export { simulatorUpstreams, requiredLiveVariables, type Upstreams, type UpstreamTarget } from './upstreams.ts'

// Base URLs only make sense against real providers; setting one while the simulator is in use
// is almost always a forgotten PROVIDERS=live, so it is refused rather than silently ignored.
const LIVE_ONLY = ['LLM_BASE_URL', 'LLM_FALLBACK_BASE_URL', 'IMAGE_BASE_URL', 'IMAGE_FALLBACK_BASE_URL', 'LANGUAGE_BASE_URL', 'STORAGE_BASE_URL'] as const

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  PROVIDERS: z.enum(['simulator', 'live']).default('simulator'),
  // Behind Cloud Run's front end, X-Forwarded-For carries the caller's address.
  TRUST_PROXY: z.stringbool().default(false),
  // Deadlines from the pace, at half a small model's speed (40 tokens/s) and a slow first token
  // (1 s), for a long post: the plan (six headings with their points, ~445 tokens) 12.1 s, then its
  // longest section (333 words, ~445 tokens) 12.1 s, then Natural Language ~0.3 s: 24.5 s
  // (measured: 27.8 s, npm run bench:pace). Images take 10–60 s and run alongside. 60 s lets a
  // slow image finish; below Cloud Run's timeoutSeconds (service.yaml).
  REQUEST_TIMEOUT_MS: MS.default(60_000),
  // GET /openapi.json and the GET /docs page; service.yaml turns them off (see its comment).
  DOCS: z.stringbool().default(true),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(64 * 1024),

  LLM_BASE_URL: optionalUrl,
  LLM_API_KEY: optionalText,
  LLM_MODEL: optionalText,
  // A hard cap on what one LLM call can cost, sent as max_completion_tokens.
  LLM_MAX_COMPLETION_TOKENS: z.coerce.number().int().min(16).max(1_000_000).default(4_096),
  // A second OpenAI-compatible provider, for calls the first fails before any token (upstreams.ts).
  LLM_FALLBACK_BASE_URL: optionalUrl,
  LLM_FALLBACK_API_KEY: optionalText,
  LLM_FALLBACK_MODEL: optionalText,
  IMAGE_BASE_URL: optionalUrl,
  IMAGE_API_KEY: optionalText,
  IMAGE_MODEL: optionalText,
  IMAGE_SIZE: z.string().regex(/^\d{2,5}x\d{2,5}$/, 'expected WIDTHxHEIGHT, e.g. 1024x1024').default('1024x1024'),
  IMAGE_MAX_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  // Vertex AI Imagen, for images the first provider fails (upstreams.ts): base URL up to the location.
  IMAGE_FALLBACK_BASE_URL: optionalUrl,
  IMAGE_FALLBACK_API_KEY: optionalText,
  IMAGE_FALLBACK_MODEL: optionalText,
  // Origins an image URL may come from (DALL·E answers with URLs on its own blob storage).
  IMAGE_URL_ORIGINS: commaList
    .pipe(z.array(z.url({ protocol: /^https?$/ }).transform((url) => new URL(url).origin))),
  LANGUAGE_BASE_URL: optionalUrl,
  LANGUAGE_API_KEY: optionalText,
  KEYWORDS_MAX: z.coerce.number().int().min(1).max(50).default(8),
  IMAGE_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, 'expected a Cloud Storage bucket name').optional(),
  STORAGE_BASE_URL: optionalUrl,
  // host[:port], as Google's own client libraries read it.
  GCE_METADATA_HOST: z.string().regex(/^[\w.-]+(:\d{1,5})?$/, 'expected host or host:port').optional(),
  K_SERVICE: optionalText,

  UPSTREAM_CONNECTIONS: z.coerce.number().int().min(1).max(4096).default(64),
  UPSTREAM_CONNECT_TIMEOUT_MS: MS.default(5_000),
  UPSTREAM_HEADERS_TIMEOUT_MS: MS.default(60_000),
  UPSTREAM_BODY_TIMEOUT_MS: MS.default(30_000),
  UPSTREAM_KEEP_ALIVE_TIMEOUT_MS: MS.default(4_000),
  // HTTP/2 to HTTPS upstreams that offer it (ALPN), UPSTREAM_HTTP2_STREAMS calls per connection:
  // less than half the CPU a post costs over TLS, and a few connections instead of one per call
  // (docs/measured.md, "HTTP/2 to the upstreams"). undici before 8.14.0 spun on cancelled HTTP/2
  // calls; test/plugins/upstream-http2.test.ts fails on such a version.
  UPSTREAM_HTTP2: z.stringbool().default(true),
  UPSTREAM_HTTP2_STREAMS: z.coerce.number().int().min(1).max(1000).default(100),
  // Extra CA (PEM) for upstream HTTPS, beside the system's roots: a private gateway's CA.
  UPSTREAM_TLS_CA_FILE: caFile,
  UPSTREAM_MAX_RESPONSE_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),

  SHUTDOWN_GRACE_MS: MS.default(8_000),
  // The plan's and the sections' own limits: 2.5 times the 12.1 s a long plan or section takes at 40 tokens/s.
  LLM_TIMEOUT_MS: MS.default(30_000),
  // A streamed call with no first token after 10 s (20 times the typical 0.5 s), or silent for 10 s
  // between chunks once writing, has stalled; a section still writing is never cut off.
  LLM_FIRST_TOKEN_TIMEOUT_MS: MS.default(10_000),
  LLM_IDLE_TIMEOUT_MS: MS.default(10_000),
  // Streamed answers: a comment line after 15 s without an event keeps proxies from closing the
  // connection; a reader that leaves 1 MiB unread is cut off (a 2,000-word post is ~15 KB).
  SSE_HEARTBEAT_MS: MS.default(15_000),
  SSE_MAX_BUFFERED_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  // gpt-image-1 takes 10–60 s: what fits in the request's 60 s once the response is assembled.
  IMAGE_TIMEOUT_MS: MS.default(55_000),
  LANGUAGE_TIMEOUT_MS: MS.default(10_000),
  UPSTREAM_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  // A 20 % fault rate needs about 25 % extra attempts (0.2 + 0.2² + …); 0.3 covers it with room,
  // while a dead upstream still costs at most 30 % more calls (and its breaker opens).
  UPSTREAM_RETRY_BUDGET_RATIO: z.coerce.number().min(0).max(1).default(0.3),
  // Finagle's floor: sporadic failures at low traffic are always retried.
  UPSTREAM_RETRY_BUDGET_MIN_PER_SECOND: z.coerce.number().min(0).max(1000).default(10),
  UPSTREAM_BACKOFF_BASE_MS: MS.default(200),
  UPSTREAM_BACKOFF_MAX_MS: MS.default(2_000),
  UPSTREAM_MAX_IN_FLIGHT: z.coerce.number().int().min(1).optional(),
  // Default: every admitted request's calls on one origin (PEAK_CALLS_PER_ORIGIN, below).
  UPSTREAM_MAX_QUEUED: z.coerce.number().int().min(0).optional(),
  // The breaker is for an upstream that is down: half the calls failing over 10 s, once there are
  // BREAKER_MIN_VOLUME of them. Below that volume, a run of failures that chance alone would
  // produce once in ten million calls at a 20 % fault rate (0.2^10).
  BREAKER_FAILURE_RATIO: z.coerce.number().min(0.01).max(1).default(0.5),
  BREAKER_MIN_VOLUME: z.coerce.number().int().min(1).default(20),
  BREAKER_CONSECUTIVE_FAILURES: z.coerce.number().int().min(1).default(10),
  BREAKER_OPEN_MS: MS.default(5_000),
  // Enough for one request's fan-out (a plan and up to six sections) to pass as probes.
  BREAKER_HALF_OPEN_PROBES: z.coerce.number().int().min(1).max(100).default(10),
  // Natural Language calls outstanding past their p95 get a second copy, at most this share of
  // calls ("The Tail at Scale": about 5 % extra load). 0 turns hedging off.
  LANGUAGE_HEDGE_RATIO: z.coerce.number().min(0).max(0.5).default(0.05),
  MAX_CONCURRENT_REQUESTS: z.coerce.number().int().min(1).default(100),
  // A second gate inside the service, behind Cloud Run's IAM. Live mode must choose one.
  AUTH_MODE: z.enum(['none', 'api-key', 'google-id-token']).optional(),
  AUTH_API_KEYS: z.string().optional(),
  AUTH_AUDIENCE: optionalText,
  AUTH_ALLOWED_SERVICE_ACCOUNTS: commaList,
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/ }).default('https://www.googleapis.com/oauth2/v3/certs'),
  // jose's cooldownDuration: a token naming an unknown key refetches the set at most this often.
  AUTH_JWKS_COOLDOWN_MS: MS.default(30_000),
  // Google does not publish its rotation period; a key stays in the set for days after Google stops
  // signing with it, so keys fetched within a day still verify every token Google issues meanwhile.
  AUTH_JWKS_MAX_STALE_MS: MS.default(24 * 60 * 60_000),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(60),
  RATE_LIMIT_CONCURRENT: z.coerce.number().int().min(1).default(10),
  // Shared state (Memorystore for Redis or Valkey). Unset: one instance's memory, for `npm start`
  // and a single instance. rediss:// for TLS; the AUTH string goes in the URL's password.
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  // Memorystore's server CA (PEM file, mounted from Secret Manager); only with rediss://.
  REDIS_TLS_CA_FILE: caFile,
  // A Redis round trip in one region is about a millisecond; a command still waiting after this is
  // treated as Redis being down (the documented answers in docs/api.md), never as a hung request.
  REDIS_COMMAND_TIMEOUT_MS: MS.default(500),
  // How long a completed Idempotency-Key replays its result (published in docs/api.md): Stripe's 24 h.
  IDEMPOTENCY_TTL: duration.default(24 * 60 * 60_000),
  // A running request's claims (its Idempotency-Key, its concurrency slot) lapse this long after
  // their last renewal, renewed every third of it: an instance that dies frees them within a lease.
  CLAIM_LEASE_MS: MS.min(3_000).default(30_000),
  MAX_EVENT_LOOP_DELAY_MS: MS.default(1_000),
  // A burst the loop clears in a second or two is not overload; a delay that lasts this long is.
  EVENT_LOOP_DELAY_WINDOW_MS: MS.default(3_000),
  MAX_HEAP_USED_RATIO: z.coerce.number().min(0.1).max(1).default(0.9),
  // Cloud Logging links a log line to its trace only as projects/PROJECT/traces/TRACE_ID.
  GOOGLE_CLOUD_PROJECT: optionalText,
  // For debugging only: log every prompt sent to the LLM (credentials are still redacted).
  LOG_PROMPTS: z.stringbool().default(false),
  LOG_REDACT_HEADERS: commaList.transform((names) => names.map((name) => name.toLowerCase())),
  SIMULATOR_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  SIMULATOR_LATENCY_MS: z.coerce.number().int().min(0).max(600_000).default(0),
  // instant answers at once, for a first run; real is a provider's pace (see src/simulator/stream.ts).
  SIMULATOR_PACE: z.enum(['instant', 'real']).default('instant'),
  SIMULATOR_PACE_SCALE: z.coerce.number().positive().max(100).default(1)
}).superRefine((env, ctx) => {
  if (env.AUTH_MODE === 'api-key' && env.AUTH_API_KEYS === undefined) {
    ctx.addIssue({ code: 'custom', path: ['AUTH_API_KEYS'], message: 'required when AUTH_MODE=api-key (name:sha256hex, comma-separated)' })
  }
  if (env.AUTH_MODE === 'api-key' && env.AUTH_API_KEYS !== undefined) {
    try { parseApiKeys(env.AUTH_API_KEYS) } catch (error) { ctx.addIssue({ code: 'custom', path: ['AUTH_API_KEYS'], message: (error as Error).message }) }
  }
  if (env.AUTH_MODE === 'google-id-token') {
    if (env.AUTH_AUDIENCE === undefined) ctx.addIssue({ code: 'custom', path: ['AUTH_AUDIENCE'], message: 'required when AUTH_MODE=google-id-token' })
    if (env.AUTH_ALLOWED_SERVICE_ACCOUNTS?.length === 0) ctx.addIssue({ code: 'custom', path: ['AUTH_ALLOWED_SERVICE_ACCOUNTS'], message: 'required when AUTH_MODE=google-id-token' })
  }
  if (env.REDIS_TLS_CA_FILE !== undefined && !env.REDIS_URL?.startsWith('rediss:')) {
    ctx.addIssue({ code: 'custom', path: ['REDIS_TLS_CA_FILE'], message: 'only used with a rediss:// REDIS_URL (TLS)' })
  }
  if (env.PROVIDERS === 'live') {
    if (env.AUTH_MODE === undefined) ctx.addIssue({ code: 'custom', path: ['AUTH_MODE'], message: 'required when PROVIDERS=live: none (behind IAM), api-key or google-id-token' })
    for (const name of requiredLiveVariables(env)) {
      if (env[name] === undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'required when PROVIDERS=live' })
    }
    for (const name of ['LLM_FALLBACK_MODEL', 'LLM_FALLBACK_API_KEY'] as const) {
      if (env[name] !== undefined && env.LLM_FALLBACK_BASE_URL === undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'only used with LLM_FALLBACK_BASE_URL; set it or unset this' })
    }
    for (const name of ['IMAGE_FALLBACK_MODEL', 'IMAGE_FALLBACK_API_KEY'] as const) {
      if (env[name] !== undefined && env.IMAGE_FALLBACK_BASE_URL === undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'only used with IMAGE_FALLBACK_BASE_URL; set it or unset this' })
    }
    if (env.IMAGE_BUCKET !== undefined && !onGoogleCloud(env)) {
      ctx.addIssue({ code: 'custom', path: ['IMAGE_BUCKET'], message: 'needs Google credentials: run on Cloud Run or set GCE_METADATA_HOST' })
    }
    return
  }
  for (const name of LIVE_ONLY) {
    if (env[name] !== undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'only used when PROVIDERS=live; set PROVIDERS=live or unset it' })
  }
// Only presence is checked here, so it can run even when another variable failed: the operator
// then sees every problem in one start-up rather than one per attempt.
}, { when: () => true })

export type Env = z.infer<typeof envSchema>

export function loadConfig (env: Record<string, string | undefined>) {
  return deepFreeze(toConfig(parseEnv(envSchema, env, 'configuration')))
}

export type Config = ReturnType<typeof loadConfig>

function toConfig (env: Env) {
  return {
    port: env.PORT,
    host: env.HOST,
    trustProxy: env.TRUST_PROXY,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    providers: env.PROVIDERS,
    logLevel: env.LOG_LEVEL,
    docs: env.DOCS,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    keywordsMax: env.KEYWORDS_MAX,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    log: { googleCloudProject: env.GOOGLE_CLOUD_PROJECT, redactHeaders: env.LOG_REDACT_HEADERS },
    logPrompts: env.LOG_PROMPTS,
    pool: {
      connections: env.UPSTREAM_CONNECTIONS,
      connectTimeoutMs: env.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: env.UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: env.UPSTREAM_BODY_TIMEOUT_MS,
      keepAliveTimeoutMs: env.UPSTREAM_KEEP_ALIVE_TIMEOUT_MS,
      http2: env.UPSTREAM_HTTP2,
      http2Streams: env.UPSTREAM_HTTP2_STREAMS,
      caFile: env.UPSTREAM_TLS_CA_FILE,
      maxResponseBytes: env.UPSTREAM_MAX_RESPONSE_BYTES
    },
    simulator: { port: env.SIMULATOR_PORT, latencyMs: env.SIMULATOR_LATENCY_MS, pace: env.SIMULATOR_PACE, paceScale: env.SIMULATOR_PACE_SCALE },
    stream: { firstTokenMs: env.LLM_FIRST_TOKEN_TIMEOUT_MS, idleMs: env.LLM_IDLE_TIMEOUT_MS },
    sse: { heartbeatMs: env.SSE_HEARTBEAT_MS, maxBufferedBytes: env.SSE_MAX_BUFFERED_BYTES },
    stepTimeoutsMs: {
      plan: env.LLM_TIMEOUT_MS,
      sections: env.LLM_TIMEOUT_MS,
      image: env.IMAGE_TIMEOUT_MS,
      sentiment: env.LANGUAGE_TIMEOUT_MS,
      keywords: env.LANGUAGE_TIMEOUT_MS
    },
    guard: {
      maxAttempts: env.UPSTREAM_MAX_ATTEMPTS,
      retryBudgetRatio: env.UPSTREAM_RETRY_BUDGET_RATIO,
      retryBudgetMinPerSecond: env.UPSTREAM_RETRY_BUDGET_MIN_PER_SECOND,
      backoffBaseMs: env.UPSTREAM_BACKOFF_BASE_MS,
      backoffCapMs: env.UPSTREAM_BACKOFF_MAX_MS,
      maxInFlight: env.UPSTREAM_MAX_IN_FLIGHT ?? env.UPSTREAM_CONNECTIONS,
      // Over HTTP/2 a connection carries UPSTREAM_HTTP2_STREAMS calls. If an HTTPS upstream picks
      // HTTP/1.1 instead, the calls past its connections wait in the pool's queue, still bounded here.
      maxInFlightHttps: env.UPSTREAM_MAX_IN_FLIGHT ?? (env.UPSTREAM_HTTP2 ? env.UPSTREAM_CONNECTIONS * env.UPSTREAM_HTTP2_STREAMS : env.UPSTREAM_CONNECTIONS),
      maxQueued: env.UPSTREAM_MAX_QUEUED ?? env.MAX_CONCURRENT_REQUESTS * PEAK_CALLS_PER_ORIGIN,
      breakerFailureRatio: env.BREAKER_FAILURE_RATIO,
      breakerMinVolume: env.BREAKER_MIN_VOLUME,
      breakerConsecutiveFailures: env.BREAKER_CONSECUTIVE_FAILURES,
      breakerOpenMs: env.BREAKER_OPEN_MS,
      breakerHalfOpenProbes: env.BREAKER_HALF_OPEN_PROBES,
      hedgeRatio: env.LANGUAGE_HEDGE_RATIO
    },
    auth: {
      mode: env.AUTH_MODE ?? 'none',
      apiKeys: env.AUTH_MODE === 'api-key' ? parseApiKeys(env.AUTH_API_KEYS ?? '') : [],
      audience: env.AUTH_AUDIENCE,
      allowedServiceAccounts: env.AUTH_ALLOWED_SERVICE_ACCOUNTS,
      jwksUrl: env.AUTH_JWKS_URL,
      jwksCooldownMs: env.AUTH_JWKS_COOLDOWN_MS,
      jwksMaxStaleMs: env.AUTH_JWKS_MAX_STALE_MS
    },
    rateLimit: { perMinute: env.RATE_LIMIT_PER_MINUTE, concurrent: env.RATE_LIMIT_CONCURRENT },
    redis: env.REDIS_URL === undefined ? undefined : { url: env.REDIS_URL, caFile: env.REDIS_TLS_CA_FILE, commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS },
    idempotency: { ttlMs: env.IDEMPOTENCY_TTL, leaseMs: env.CLAIM_LEASE_MS },
    load: {
      maxConcurrentRequests: env.MAX_CONCURRENT_REQUESTS,
      maxEventLoopDelayMs: env.MAX_EVENT_LOOP_DELAY_MS,
      eventLoopDelayWindowMs: env.EVENT_LOOP_DELAY_WINDOW_MS,
      maxHeapUsedRatio: env.MAX_HEAP_USED_RATIO
    },
    // Undefined base URLs mean "the simulator": server.ts fills them in with simulatorUpstreams().
    upstreams: env.PROVIDERS === 'live' ? liveUpstreams(env) : undefined,
    image: { size: env.IMAGE_SIZE, maxBytes: env.IMAGE_MAX_BYTES, model: env.IMAGE_MODEL, bucket: env.IMAGE_BUCKET, urlOrigins: env.IMAGE_URL_ORIGINS },
    llm: { model: env.LLM_MODEL, maxCompletionTokens: env.LLM_MAX_COMPLETION_TOKENS }
  }
}

/** Every variable the service reads, for the manifest checks. */
export const ENV_NAMES: readonly string[] = [...Object.keys(envSchema.shape), ...Object.keys(telemetrySchema.shape)]
