import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import secureJson from 'secure-json-parse'
import { z } from 'zod'
import { catalogue, errorLogFields, isServiceError, type ErrorBody, type ErrorCode } from '../errors.ts'
import { logCallerGone } from './access-log.ts'
import { CallerGone } from './in-flight.ts'

// Fastify's own client errors, by code, into the catalogue.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request'
}

function send (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, message: string = catalogue[code].message, details?: unknown) {
  const body: ErrorBody = { error: { code, message, ...(details === undefined ? {} : { details }) }, requestId: request.id }
  return reply.code(catalogue[code].status).send(body)
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route's path and its methods, HEAD included: for 405 and for the contract test. */
    readonly routeMethods: ReadonlyMap<string, ReadonlySet<string>>
  }
}

function errorResponses (app: FastifyInstance) {
  // RFC 9110 §15.5.6: a path that exists with other methods is 405 with Allow, not 404.
  const methodsByPath = new Map<string, Set<string>>()
  app.decorate('routeMethods', methodsByPath)
  app.addHook('onRoute', (route) => {
    const methods = methodsByPath.get(route.url) ?? new Set()
    for (const method of [route.method].flat()) methods.add(method)
    methodsByPath.set(route.url, methods)
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!
    const allowed = methodsByPath.get(path)
    if (allowed !== undefined) {
      reply.header('allow', [...allowed].sort().join(', '))
      return send(request, reply, 'method_not_allowed', `${path} does not serve ${request.method}; it serves ${[...allowed].sort().join(', ')}.`)
    }
    return send(request, reply, 'not_found', `No route for ${request.method} ${path}.`)
  })

  // Fastify's own JSON parser answers "Body is not valid JSON" for a __proto__ key too: this one
  // (the same secure-json-parse, the same rules) says which it was.
  app.removeContentTypeParser('application/json')
  // Its errors carry Fastify's own codes, so the error handler treats them as Fastify's: a 400 in
  // the access line, no warning line for a caller's mistake.
  const bodyError = (code: string, message: string) => Object.assign(new Error(message), { code, statusCode: 400 })
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(bodyError('FST_ERR_CTP_EMPTY_JSON_BODY', 'The body is empty; a JSON object is expected.'), undefined)
    try {
      done(null, secureJson.parse(body as string, undefined, { protoAction: 'error', constructorAction: 'error' }))
    } catch (error) {
      const poisoned = /forbidden (prototype|constructor) property/.test((error as Error).message)
      done(bodyError('FST_ERR_CTP_INVALID_JSON_BODY', poisoned
        ? 'The body has a __proto__ or constructor.prototype key, which is refused.'
        : 'The body is not valid JSON.'), undefined)
    }
  })

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // Nobody is left to answer, and leaving is the caller's right, not our error: one access line
    // (status 499) instead of an error, and an empty reply so that Fastify finishes the request.
    if (error instanceof CallerGone) {
      logCallerGone(request, reply)
      return reply.code(499).send()
    }
    if (isServiceError(error)) {
      request.log.warn(errorLogFields(error), error.message)
      reply.headers(error.headers)
      return send(request, reply, error.code, error.message, error.details)
    }
    if (error instanceof z.ZodError) {
      const context = (error as { validationContext?: string }).validationContext ?? 'body'
      const details = error.issues.map((issue) => ({ path: [context, ...issue.path].join('.'), message: issue.message }))
      return send(request, reply, 'invalid_request', 'The request is invalid.', details)
    }
    const mapped = FASTIFY_CODES[error.code]
    if (mapped !== undefined) return send(request, reply, mapped, error.message)
    // JSON.parse and prototype-poisoning SyntaxErrors from the body parser carry a 400 status.
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return send(request, reply, 'invalid_request', error.message)
    }
    request.log.error({ err: error }, 'unhandled error')
    return send(request, reply, 'internal_error')
  })
}

/**
 * Node's clientError, for what fails before Fastify sees a request (malformed HTTP, a header block
 * over 16 KiB): the documented error shape and an x-request-id, instead of Fastify's own body.
 */
export function clientErrorHandler (this: { log: FastifyBaseLogger }, error: Error & { code?: string }, socket: Socket) {
  // Nobody to answer: the socket is gone, or the client never finished its headers.
  if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
    socket.destroy()
    return
  }
  const code: ErrorCode = error.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'invalid_request'
  const message = code === 'headers_too_large' ? catalogue[code].message : 'The request is not well-formed HTTP.'
  const requestId = randomUUID()
  const body = JSON.stringify({ error: { code, message }, requestId } satisfies ErrorBody)
  const status = catalogue[code].status
  // Fastify binds this handler to its instance (fastify.js: options.clientErrorHandler.bind(fastify)).
  this.log.info({ requestId, code, cause: error.code }, 'client error before a request was read')
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`)
}

/** Fastify's errors before routing (a malformed URL): into the one error handler, like any other. */
export function frameworkErrors (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  send(request, reply, 'invalid_request', error.code === 'FST_ERR_BAD_URL' ? 'The URL is malformed.' : error.message)
}

export default fp(errorResponses, { name: 'error-responses', fastify: '5.x' })
