/**
 * Holds the start of streamed pipelines while callers are still arriving, so that in a burst every
 * caller is read and sent its `accepted` event before any pipeline does the synchronous work of its
 * first upstream calls (prompts, a span, an HTTP/2 stream, a TLS write).
 *
 * A turn of the event loop that read a new caller means more may be waiting in the sockets: the
 * gate stays shut for another turn. The first turn that reads none opens it, and everything waiting
 * starts together. `maxWaitMs` bounds the wait under a steady stream of arrivals.
 */
export class StartGate {
  readonly #maxWaitMs: number
  #waiting: Array<() => void> = []
  #arrivedThisTurn = false
  #firstWaitingAt = 0

  constructor (maxWaitMs: number) {
    this.#maxWaitMs = maxWaitMs
  }

  /** Resolves when this caller's pipeline may start. */
  pass (): Promise<void> {
    return new Promise((resolve) => {
      if (this.#waiting.length === 0) {
        this.#firstWaitingAt = performance.now()
        setImmediate(this.#check)
      }
      this.#waiting.push(resolve)
      this.#arrivedThisTurn = true
    })
  }

  // setImmediate runs after the turn's poll phase, so a callback here has seen what that turn read.
  #check = () => {
    if (this.#arrivedThisTurn && performance.now() - this.#firstWaitingAt < this.#maxWaitMs) {
      this.#arrivedThisTurn = false
      setImmediate(this.#check)
      return
    }
    const waiting = this.#waiting
    this.#waiting = []
    this.#arrivedThisTurn = false
    for (const start of waiting) start()
  }
}
