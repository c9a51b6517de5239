import { z } from 'zod'
import { catalogue, type ErrorCode } from '../errors.ts'
import { briefSchema } from '../generation/brief.ts'
import { errorSchema, healthSchema, postSchema, readinessSchema, streamEventSchemas, warningSchema } from './schemas.ts'

// The OpenAPI 3.1 document, generated from the zod schemas the service validates and answers with
// (z.toJSONSchema, whose 2020-12 dialect is OpenAPI 3.1's). The operations list is written here,
// next to those schemas; test/contract/ checks that it names every route the app has, and that every
// answer the service gives matches it.

type Examples = Record<string, unknown>
type Json = Record<string, unknown>

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })

function componentSchemas () {
  const inputs = z.registry<{ id: string }>()
  inputs.add(briefSchema, { id: 'Brief' })
  const outputs = z.registry<{ id: string }>()
  outputs.add(postSchema, { id: 'Post' })
  outputs.add(warningSchema, { id: 'Warning' })
  outputs.add(healthSchema, { id: 'Health' })
  outputs.add(readinessSchema, { id: 'Readiness' })
  for (const [event, schema] of Object.entries(streamEventSchemas)) {
    if (schema !== postSchema && schema !== warningSchema) outputs.add(schema, { id: `StreamEvent${event[0]!.toUpperCase()}${event.slice(1)}` })
  }
  const uri = (id: string) => `#/components/schemas/${id}`
  const schemas = {
    ...z.toJSONSchema(inputs, { io: 'input', target: 'draft-2020-12', uri }).schemas,
    ...z.toJSONSchema(outputs, { io: 'output', target: 'draft-2020-12', uri }).schemas
  }
  for (const status of new Set(Object.values(catalogue).map((entry) => entry.status))) {
    schemas[`Error${status}`] = z.toJSONSchema(errorSchema(codesFor(status)), { io: 'output', target: 'draft-2020-12' })
  }
  // Each is a component of this document, not a document of its own.
  for (const schema of Object.values(schemas)) {
    delete schema.$schema
    delete schema.$id
  }
  return schemas
}

function codesFor (status: number, only?: readonly ErrorCode[]) {
  return (Object.keys(catalogue) as ErrorCode[]).filter((code) => catalogue[code].status === status && (only === undefined || only.includes(code)))
}

const header = (description: string, schema: Json = { type: 'string' }) => ({ description, required: true, schema })
const REQUEST_ID = header('The request id: the caller\'s x-request-id when it was well formed, else a new UUID.')
const RETRY_AFTER = header('Seconds to wait before retrying.', { type: 'integer', minimum: 0 })

/** An error response for `status`, limited to the codes this operation can give with it. */
function errorResponse (status: number, description: string, options: { codes?: readonly ErrorCode[], headers?: Json, example?: unknown } = {}) {
  const codes = codesFor(status, options.codes)
  const schema = options.codes === undefined ? ref(`Error${status}`) : z.toJSONSchema(errorSchema(codes), { io: 'output', target: 'draft-2020-12' })
  if (options.codes !== undefined) delete (schema as Json).$schema
  return {
    description: `${description} \`error.code\`: ${codes.map((code) => `\`${code}\``).join(', ')}.`,
    headers: { 'x-request-id': REQUEST_ID, ...options.headers },
    content: { 'application/json': { schema, ...(options.example === undefined ? {} : { example: options.example }) } }
  }
}

// Answers that can come before the request reaches a route: they belong to every operation.
function connectionErrors () {
  return {
    400: errorResponse(400, 'Malformed HTTP, a malformed URL, or (for POST /generate) an invalid body.'),
    431: errorResponse(431, 'The request\'s header block is over Node\'s 16 KiB limit.'),
    503: errorResponse(503, 'The instance is draining after SIGTERM; retry on another.', { codes: ['shutting_down'], headers: { 'retry-after': RETRY_AFTER } })
  }
}

/** Each event of a streamed answer and the schema of its data (OpenAPI 3.1 cannot say it itself). */
function streamEvents () {
  const when: Record<keyof typeof streamEventSchemas, string> = {
    accepted: 'At once, before any upstream call.',
    plan: 'The plan is ready.',
    delta: 'Body text as the LLM writes it, in reading order: appended, the deltas are the result\'s body.',
    image: 'The image is ready.',
    analysis: 'Sentiment and keywords are done.',
    warning: 'Something degraded; the same object as in the result\'s warnings.',
    result: 'Last event on success: exactly the JSON answer.',
    error: 'Last event on failure: the error shape, plus the HTTP status the JSON answer would have had.'
  }
  const schemaName = (event: string) => event === 'result' ? 'Post' : event === 'warning' ? 'Warning' : `StreamEvent${event[0]!.toUpperCase()}${event.slice(1)}`
  return Object.fromEntries(Object.keys(streamEventSchemas).map((event) => [event, { description: when[event as keyof typeof when], data: ref(schemaName(event)) }]))
}

/** A GET route of the docs page (DOCS=true). */
function docsAsset (operationId: string, summary: string, mediaType: string) {
  return {
    get: {
      operationId,
      summary,
      responses: { 200: { description: summary, headers: { 'x-request-id': REQUEST_ID }, content: { [mediaType]: { schema: mediaType === 'application/json' ? { type: 'object' } : { type: 'string' } } } }, ...connectionErrors() }
    }
  }
}

export function buildOpenApi (examples: Examples = {}) {
  const example = (name: string) => examples[name]
  return {
    openapi: '3.1.0',
    info: {
      title: 'content-engine',
      version: '1.0.0',
      description: [
        'Writes blog posts for other systems: an LLM drafts and edits the post, an image API draws the hero image, and Google Cloud Natural Language scores sentiment and extracts keywords.',
        '',
        'Every non-2xx answer is `{ "error": { "code", "message", "details"? }, "requestId" }`, with the id also in `x-request-id`. ' +
        'A path that does not exist is 404 `not_found`; a path that exists with another method is 405 `method_not_allowed` with an `Allow` header ' +
        '(HEAD is served wherever GET is). A client that never finishes sending its request headers is disconnected without an answer.'
      ].join('\n')
    },
    servers: [{ url: '/', description: 'This instance' }],
    components: {
      schemas: componentSchemas(),
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'AUTH_MODE=api-key: an API key. AUTH_MODE=google-id-token: a Google ID token whose audience is this service.' },
        apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'AUTH_MODE=api-key: the API key, as an alternative to Authorization: Bearer.' }
      },
      responses: {
        NotFound: errorResponse(404, 'No route has this path.'),
        MethodNotAllowed: errorResponse(405, 'The path exists, with other methods.', { headers: { allow: header('The methods this path serves.') } })
      }
    },
    paths: {
      '/generate': {
        post: {
          operationId: 'generatePost',
          summary: 'Write a blog post',
          description: 'Plans and writes the post, draws its image and analyses it. Image, sentiment and keywords are optional: when one fails, the post still comes back with that field null (or []) and a warning. With Accept: text/event-stream the post is streamed as Server-Sent Events (x-sse-events lists them); errors before the stream starts are the statuses below.',
          security: [{}, { bearer: [] }, { apiKey: [] }],
          parameters: [
            { name: 'x-request-id', in: 'header', required: false, description: 'An id to correlate logs with; kept when it matches the pattern.', schema: { type: 'string', pattern: '^[\\w.:-]{1,128}$' } },
            { name: 'x-request-timeout-ms', in: 'header', required: false, description: 'Shortens the request\'s deadline (REQUEST_TIMEOUT_MS); never lengthens it.', schema: { type: 'integer', minimum: 1 } },
            { name: 'idempotency-key', in: 'header', required: false, description: 'draft-ietf-httpapi-idempotency-key-header: a retry with the same key and request replays the first one\'s post (kept IDEMPOTENCY_TTL, 24 h by default) instead of writing another. 1–255 printable ASCII characters, as a structured-field string (`"..."`) or bare. Scoped to the caller. See docs/api.md, "Idempotency".', schema: { type: 'string', minLength: 1, maxLength: 257 } },
            { name: 'prefer', in: 'header', required: false, description: 'RFC 7240 `wait=N`: with an Idempotency-Key whose first request is still running, wait up to N seconds (within the deadline) for its post instead of an immediate 409.', schema: { type: 'string', example: 'wait=30' } }
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: ref('Brief'), ...(example('brief') === undefined ? {} : { example: example('brief') }) } }
          },
          responses: {
            200: {
              description: 'The post.',
              headers: {
                'x-request-id': REQUEST_ID,
                'server-timing': header('`app;dur=MS`: the service\'s own time on the request.'),
                'idempotent-replayed': { description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key (no upstream was called).', required: false, schema: { type: 'string', enum: ['true'] } }
              },
              content: {
                'application/json': { schema: ref('Post'), ...(example('post') === undefined ? {} : { example: example('post') }) },
                'text/event-stream': {
                  schema: { type: 'string', description: 'Server-Sent Events, when the request has Accept: text/event-stream.' },
                  'x-sse-events': streamEvents()
                }
              }
            },
            ...connectionErrors(),
            400: errorResponse(400, 'An invalid body (`details: [{path, message}]`), malformed JSON, a `__proto__` or `constructor.prototype` key, malformed HTTP or URL.', { example: example('invalidRequest') }),
            401: errorResponse(401, 'AUTH_MODE is set and the credential is missing or not valid.', { headers: { 'www-authenticate': header('`Bearer`, with `error="invalid_token"` for a bad token.') } }),
            403: errorResponse(403, 'A valid Google ID token whose service account is not on AUTH_ALLOWED_SERVICE_ACCOUNTS.'),
            413: errorResponse(413, 'A body above BODY_LIMIT_BYTES.'),
            409: errorResponse(409, 'The Idempotency-Key\'s first request is still running (on any instance): retry after Retry-After, or send Prefer: wait=N.', { headers: { 'retry-after': RETRY_AFTER } }),
            415: errorResponse(415, 'A body that is not application/json.'),
            422: errorResponse(422, 'The Idempotency-Key was used before with a different request (body or response mode); checked before 409.'),
            429: errorResponse(429, 'This caller is above RATE_LIMIT_PER_MINUTE or RATE_LIMIT_CONCURRENT.', { headers: { 'retry-after': RETRY_AFTER } }),
            500: errorResponse(500, 'A fault of ours; never a stack or an internal message.'),
            502: errorResponse(502, 'A required upstream answered an error, could not be reached, answered something unusable or too large.', { example: example('upstreamError') }),
            503: errorResponse(503, 'At capacity, a required upstream\'s breaker is open, an upstream asked us to wait longer than the request can, the instance is draining, or (with an Idempotency-Key) Redis cannot be reached.', { codes: ['shutting_down', 'overloaded', 'idempotency_unavailable', 'circuit_open', 'upstream_rate_limited'], headers: { 'retry-after': RETRY_AFTER }, example: example('overloaded') }),
            504: errorResponse(504, 'An upstream did not answer in time, or the request\'s deadline passed.', { example: example('timeout') })
          }
        }
      },
      '/healthz': {
        get: {
          operationId: 'health',
          summary: 'Liveness',
          description: 'Answers without calling any upstream.',
          responses: { 200: { description: 'Alive.', headers: { 'x-request-id': REQUEST_ID }, content: { 'application/json': { schema: ref('Health') } } }, ...connectionErrors() }
        }
      },
      '/readyz': {
        get: {
          operationId: 'readiness',
          summary: 'Readiness',
          description: 'The startup probe: with REDIS_URL, 503 `not_ready` until Redis answers a PING; never calls an upstream provider.',
          responses: {
            200: { description: 'Ready.', headers: { 'x-request-id': REQUEST_ID }, content: { 'application/json': { schema: ref('Readiness') } } },
            ...connectionErrors(),
            503: errorResponse(503, 'Redis cannot be reached, or the instance is draining.', { codes: ['not_ready', 'shutting_down'], headers: { 'retry-after': RETRY_AFTER } })
          }
        }
      },
      '/openapi.json': {
        get: {
          operationId: 'openApi',
          summary: 'This document',
          description: 'Served when DOCS=true; the same document is committed as openapi.json.',
          responses: { 200: { description: 'The OpenAPI document.', headers: { 'x-request-id': REQUEST_ID }, content: { 'application/json': { schema: { type: 'object' } } } }, ...connectionErrors() }
        }
      },
      '/docs': {
        get: {
          operationId: 'docsRedirect',
          summary: 'Redirects to /docs/',
          responses: { 301: { description: 'To the page.', headers: { 'x-request-id': REQUEST_ID, location: header('`/docs/`') } }, ...connectionErrors() }
        }
      },
      '/docs/': docsAsset('docs', 'A page to read this document and try the API against this instance (Scalar).', 'text/html'),
      '/docs/js/scalar.js': docsAsset('docsScript', 'The page\'s script, served by this instance rather than a CDN.', 'application/javascript'),
      '/docs/openapi.json': docsAsset('docsOpenApiJson', 'This document again, as the page reads it.', 'application/json'),
      '/docs/openapi.yaml': docsAsset('docsOpenApiYaml', 'This document as YAML.', 'application/yaml')
    }
  }
}

export type OpenApiDocument = ReturnType<typeof buildOpenApi>
