export const ENDPOINTS = ['llm', 'image', 'sentiment', 'entities'] as const
export type Endpoint = typeof ENDPOINTS[number]

export interface Fault {
  /** Answer with this status and an error body in the provider's format. */
  status?: number
  retryAfter?: string
  /** Extra delay before answering, on top of the configured latency. */
  delayMs?: number
  /** Never send headers. */
  hang?: boolean
  /** Send headers and half the body, then never finish. */
  hangBody?: boolean
  /** Destroy the socket before the headers, or after half the body. */
  reset?: 'headers' | 'body'
  /** A 200 whose body is not JSON. */
  malformed?: boolean
  /** A 200 whose JSON body is this many bytes. */
  oversizeBytes?: number
  /** A 200 with valid JSON in the wrong shape (for the plan: content missing its fields). */
  wrongShape?: boolean
  /** For llm: apply only to the plan call or only to the section calls. */
  kind?: 'plan' | 'section'
  /** Streamed llm calls, a third of the way in: stop sending and keep the socket open. */
  stall?: boolean
  /** Streamed llm calls, a third of the way in: destroy the socket. */
  cut?: boolean
  /** Streamed llm calls, a third of the way in: an in-band {"error": …} event, then the end. */
  streamError?: boolean
  /** Streamed llm calls: every token, then the end, with no finish_reason and no [DONE]. */
  noDone?: boolean
  /** Half the answer, then finish_reason "length", as a model that hit max_completion_tokens. */
  finishLength?: boolean
  /** Apply to the first N calls only (flag and setFault faults; a header fault is per request anyway). */
  times?: number
  /** OpenAI's retry-after-ms header. */
  retryAfterMs?: string
  /** A 429 that says the quota is exhausted (OpenAI's insufficient_quota), not a rate limit. */
  quota?: boolean
  /** For llm: content with script tags, javascript: links and foreign images; "echo" also repeats the system prompt. */
  hostile?: 'markup' | 'echo'
}

/** What a random fault can be, for --fault-rate: each injected fault picks one kind at random. */
export const CHAOS_KINDS = ['reset', '5xx', 'malformed', 'wrong-shape', 'slow', 'hang'] as const
export type ChaosKind = typeof CHAOS_KINDS[number]

export interface Chaos {
  /** Probability that a provider call meets a fault, 0 to 1. */
  rate: number
  kinds: readonly ChaosKind[]
  /** How late a 'slow' answer comes. */
  slowMs: number
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!

/** A fault drawn for one call, or undefined when the dice say this call goes through. */
export function drawFault (chaos: Chaos | undefined): Fault | undefined {
  if (chaos === undefined || chaos.kinds.length === 0 || Math.random() >= chaos.rate) return undefined
  switch (pick(chaos.kinds)) {
    case 'reset': return { reset: pick(['headers', 'body'] as const) }
    case '5xx': return { status: pick([500, 502, 503]) }
    case 'malformed': return { malformed: true }
    case 'wrong-shape': return { wrongShape: true }
    case 'slow': return { delayMs: chaos.slowMs }
    case 'hang': return { hang: true }
  }
}

/** "reset,5xx,hang" -> the kinds, for the --fault-kinds flag. */
export function parseChaosKinds (spec: string): ChaosKind[] {
  const kinds = spec.split(',').map((item) => item.trim()).filter(Boolean)
  for (const kind of kinds) {
    if (!CHAOS_KINDS.includes(kind as ChaosKind)) throw new FaultSpecError(`unknown fault kind "${kind}"; expected ${CHAOS_KINDS.join(', ')}`)
  }
  return kinds as ChaosKind[]
}

export class FaultSpecError extends Error {
  override name = 'FaultSpecError'
}

/**
 * Parses "status=503,retry-after=1", "hang", "reset=body", "malformed", "oversize=52428800",
 * "delay=200", "wrong-shape,kind=plan", "stall,kind=section": the grammar of both the --fault flag and the x-sim-fault header.
 */
export function parseFault (spec: string): Fault {
  const fault: Fault = {}
  for (const part of spec.split(',').map((item) => item.trim()).filter(Boolean)) {
    const [key = '', value] = part.split('=', 2).map((item) => item.trim())
    switch (key) {
      case 'status': fault.status = integer(key, value, 100, 599); break
      case 'retry-after': fault.retryAfter = required(key, value); break
      case 'delay': fault.delayMs = integer(key, value, 0, 3_600_000); break
      case 'hang': fault.hang = true; break
      case 'hang-body': fault.hangBody = true; break
      case 'reset':
        if (value !== undefined && value !== 'headers' && value !== 'body') throw new FaultSpecError('reset takes headers or body')
        fault.reset = value ?? 'headers'
        break
      case 'malformed': fault.malformed = true; break
      case 'oversize': fault.oversizeBytes = integer(key, value, 1, 1024 ** 3); break
      case 'wrong-shape': fault.wrongShape = true; break
      case 'times': fault.times = integer(key, value, 1, 1_000_000); break
      case 'retry-after-ms': fault.retryAfterMs = required(key, value); break
      case 'quota': fault.quota = true; break
      case 'hostile':
        if (value !== undefined && value !== 'markup' && value !== 'echo') throw new FaultSpecError('hostile takes markup or echo')
        fault.hostile = value ?? 'markup'
        break
      case 'kind':
        if (value !== 'plan' && value !== 'section') throw new FaultSpecError('kind takes plan or section')
        fault.kind = value
        break
      case 'stall': fault.stall = true; break
      case 'cut': fault.cut = true; break
      case 'stream-error': fault.streamError = true; break
      case 'no-done': fault.noDone = true; break
      case 'finish-length': fault.finishLength = true; break
      default: throw new FaultSpecError(`unknown fault "${key}"`)
    }
  }
  return fault
}

/** "llm:status=503" -> ['llm', fault], for the --fault flag. */
export function parseEndpointFault (spec: string): [Endpoint, Fault] {
  const colon = spec.indexOf(':')
  const endpoint = spec.slice(0, colon)
  if (colon < 0 || !ENDPOINTS.includes(endpoint as Endpoint)) {
    throw new FaultSpecError(`expected ENDPOINT:FAULT with ENDPOINT one of ${ENDPOINTS.join(', ')}`)
  }
  return [endpoint as Endpoint, parseFault(spec.slice(colon + 1))]
}

function required (key: string, value: string | undefined) {
  if (value === undefined || value === '') throw new FaultSpecError(`${key} needs a value`)
  return value
}

function integer (key: string, value: string | undefined, min: number, max: number) {
  const number = Number(required(key, value))
  if (!Number.isInteger(number) || number < min || number > max) throw new FaultSpecError(`${key} must be an integer from ${min} to ${max}`)
  return number
}
