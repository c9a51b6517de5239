import { Agent, request } from 'undici'

/**
 * `callers` callers at once, each sending `rounds` POST /generate one after another, through one
 * Agent of its own (closed at the end). `read` turns each answer (status, parsed body, and the
 * caller's wall time to the end of the body) into what the bench keeps.
 */
export async function fromCallers<T> (origin: string, { callers, rounds, brief }: { callers: number, rounds: number, brief: (caller: number) => unknown }, read: (status: number, json: any, wallMs: number) => T) {
  const dispatcher = new Agent({ connections: callers })
  const answers: T[] = []
  try {
    await Promise.all(Array.from({ length: callers }, async (_, caller) => {
      for (let round = 0; round < rounds; round++) {
        const started = performance.now()
        const response = await request(`${origin}/generate`, {
          dispatcher,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(brief(caller)),
          // Posts at a provider's pace take longer than undici's own timeouts allow.
          headersTimeout: 0,
          bodyTimeout: 0
        })
        const json = await response.body.json()
        answers.push(read(response.statusCode, json, performance.now() - started))
      }
    }))
  } finally {
    await dispatcher.close()
  }
  return answers
}
