import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { connect } from 'node:net'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'

export const DOCUMENT_PATH = new URL('../../openapi.json', import.meta.url)

type Json = Record<string, any>

export interface Answer {
  method: string
  path: string
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

const pointer = (...parts: string[]) => parts.map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')

/** The committed document, and a check of any answer against it. */
export function loadContract () {
  const document = JSON.parse(readFileSync(DOCUMENT_PATH, 'utf8')) as Json
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats.default(ajv)
  ajv.addSchema(document, 'openapi.json')

  /** Where the document describes this answer, or why it does not. */
  function responseFor (method: string, path: string, status: number): { at: string, response: Json } | string {
    const operation = document.paths[path]?.[method.toLowerCase()]
    if (operation === undefined) {
      const known = document.paths[path] !== undefined
      const name = known ? 'MethodNotAllowed' : 'NotFound'
      if (status !== (known ? 405 : 404)) return `${method} ${path} is not in the document, and ${status} is not its ${known ? 405 : 404}`
      return { at: pointer('components', 'responses', name), response: document.components.responses[name] }
    }
    const response = operation.responses[String(status)]
    if (response === undefined) return `${method} ${path} ${status} is not in the document`
    return { at: pointer('paths', path, method.toLowerCase(), 'responses', String(status)), response }
  }

  /** Problems with `answer`, as the document sees it: none means it is described exactly. */
  function check (answer: Answer): string[] {
    const found = responseFor(answer.method, answer.path, answer.status)
    if (typeof found === 'string') return [found]
    const problems: string[] = []
    const where = `${answer.method} ${answer.path} ${answer.status}`
    for (const [name, spec] of Object.entries(found.response.headers ?? {}) as Array<[string, Json]>) {
      if (spec.required === true && answer.headers[name] === undefined) problems.push(`${where}: no ${name} header`)
    }
    const content = (found.response.content ?? {}) as Json
    const mediaTypes = Object.keys(content)
    if (mediaTypes.length === 0) return problems
    const contentType = String(answer.headers['content-type'] ?? '')
    const mediaType = mediaTypes.find((type) => contentType.startsWith(type))
    if (mediaType === undefined) return [...problems, `${where}: content-type ${contentType}, the document says ${mediaTypes.join(' or ')}`]
    if (mediaType !== 'application/json') return problems
    const validate = ajv.compile({ $ref: `openapi.json#/${found.at}/${pointer('content', mediaType, 'schema')}` })
    let body: unknown
    try { body = JSON.parse(answer.body) } catch { return [...problems, `${where}: the body is not JSON`] }
    if (!validate(body)) problems.push(`${where}: ${ajv.errorsText(validate.errors)} in ${answer.body.slice(0, 300)}`)
    return problems
  }

  /** Every (method, path, status) the document promises. */
  function documented () {
    return Object.entries(document.paths as Json).flatMap(([path, operations]) =>
      Object.entries(operations as Json).flatMap(([method, operation]) =>
        Object.keys((operation as Json).responses).map((status) => ({ method: method.toUpperCase(), path, status: Number(status) }))))
  }

  return { document, ajv, check, documented }
}

/** One raw HTTP/1.1 exchange over a real socket, for what must fail before Fastify parses it. */
export async function rawExchange (port: number, request: string): Promise<Omit<Answer, 'method' | 'path'>> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let raw = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { raw += chunk })
  socket.on('error', () => {})
  socket.write(request)
  await once(socket, 'close')
  return parseResponse(raw)
}

export function parseResponse (raw: string) {
  const [head = '', ...rest] = raw.split('\r\n\r\n')
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') }
}
