import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { z } from 'zod'
import { catalogue, isServiceError, type ErrorBody, type ErrorCode } from '../errors.ts'
import { logCallerGone } from './access-log.ts'
import { CallerGone } from './in-flight.ts'

// Fastify's own client errors, by code, into the catalogue.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
  // handlerTimeout, the backstop behind the in-flight plugin's own deadline.
  FST_ERR_HANDLER_TIMEOUT: 'upstream_timeout'
}

function send (request: FastifyRequest, reply: FastifyReply, code: ErrorCode, message: string = catalogue[code].message, details?: unknown) {
  const body: ErrorBody = { error: { code, message, ...(details === undefined ? {} : { details }) }, requestId: request.id }
  return reply.code(catalogue[code].status).send(body)
}

function errorResponses (app: FastifyInstance) {
  app.setNotFoundHandler((request, reply) => send(request, reply, 'not_found', `No route for ${request.method} ${request.url.split('?')[0]}.`))

  app.setErrorHandler((error: FastifyError, request, reply) => {
    // Nobody is left to answer, and leaving is the caller's right, not our error: one access line
    // (status 499) instead of an error, and an empty reply so that Fastify finishes the request.
    if (error instanceof CallerGone) {
      logCallerGone(request, reply)
      return reply.code(499).send()
    }
    if (isServiceError(error)) {
      request.log.warn({ err: error, code: error.code }, error.message)
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

export default fp(errorResponses, { name: 'error-responses', fastify: '5.x' })
