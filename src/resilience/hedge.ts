// Hedged requests ("The Tail at Scale", Dean and Barroso, CACM 2013): when a call has been out
// longer than the p95 its kind has shown, send a second one and take whichever answers first;
// the loser is aborted. A token bucket caps hedges at `ratio` of calls plus a small reserve, so a
// backend that is slow for everyone gets at most that much extra load (grafana/loki#4826 on hedging amplifying load).
//
// Hedges are also paced: each one holds a slot for one p95, and there are `ratio` of the kind's
// calls in flight, at least two. A call that comes due while the slots or the tokens are taken
// waits, oldest first, and is hedged when both are free, unless it answers first. Without this a
// burst of calls that cross the p95 together (a load step, a GC pause: slowness a second copy
// cannot cure) spent the whole reserve at once, and the calls that were really stuck, the ones
// hedging is for, found it empty. Waiting sorts them: an ordinary tail call answers while it waits
// and leaves the queue; a stuck one is still there when a slot frees. The floor of two keeps a few
// stragglers, when little else is in flight, from being hedged one p95 apart.
// Only for pure reads that cost little: Natural Language. Never for LLM or image calls, which are
// billed per attempt and answer differently each time.
import { hedges } from '../telemetry/instruments.ts'

export interface HedgeOptions {
  /** Most hedges per call, 0 to 1: 0.05 is five in a hundred. 0 turns hedging off. */
  ratio: number
  /** Latencies kept per kind, the newest, for its p95. */
  window?: number
  /** No hedging until a kind has this many latencies: a p95 of three calls means nothing. */
  minSamples?: number
  /**
   * A reserve of hedges, full at start and refilled by unused budget: with 5 % of calls slow and a
   * 5 % ratio the budget alone runs dry whenever chance brings a few more slow calls than usual.
   */
  reserve?: number
}

interface Kind {
  latencies: number[]
  next: number
  p95: number | undefined
  tokens: number
  /** Calls of this kind running, first copies only. */
  inFlight: number
  /** Second copies out. */
  hedging: number
  /** Calls past their p95 waiting for a slot or a token, oldest first (a Set keeps insertion order). */
  waiting: Set<() => void>
}

export type Hedged<T> = (signal: AbortSignal) => Promise<T>

export function createHedger (options: HedgeOptions) {
  const window = options.window ?? 200
  const minSamples = options.minSamples ?? 20
  const reserve = options.reserve ?? 25
  const kinds = new Map<string, Kind>()

  function kindFor (name: string) {
    let kind = kinds.get(name)
    if (kind === undefined) {
      kind = { latencies: [], next: 0, p95: undefined, tokens: reserve, inFlight: 0, hedging: 0, waiting: new Set() }
      kinds.set(name, kind)
    }
    return kind
  }

  function record (kind: Kind, ms: number) {
    if (kind.latencies.length < window) kind.latencies.push(ms)
    else kind.latencies[kind.next] = ms
    kind.next = (kind.next + 1) % window
    if (kind.latencies.length >= minSamples) {
      const sorted = kind.latencies.toSorted((a, b) => a - b)
      kind.p95 = sorted[Math.ceil(sorted.length * 0.95) - 1]
    }
  }

  /** Hedges the oldest waiting calls while a slot and a token are free. */
  function drain (kind: Kind) {
    for (const hedge of kind.waiting) {
      if (kind.tokens < 1 || kind.hedging >= Math.max(2, Math.ceil(options.ratio * kind.inFlight))) return
      kind.waiting.delete(hedge)
      hedge()
    }
  }

  return {
    /**
     * Runs `call`, and a second copy once the first has been out longer than the kind's p95, if
     * the budget allows. The first answer wins and the other is aborted; a failure waits for the
     * other copy if one is running. Without a hedge a failure is the caller's at once (the guard
     * inside `call` has already retried it).
     */
    run<T> (name: string, signal: AbortSignal | undefined, call: Hedged<T>): Promise<T> {
      const kind = kindFor(name)
      kind.tokens = Math.min(reserve, kind.tokens + options.ratio)
      kind.inFlight++
      const delay = options.ratio > 0 ? kind.p95 : undefined
      return new Promise<T>((resolve, reject) => {
        const copies: AbortController[] = []
        let running = 0
        let settled = false
        let timer: NodeJS.Timeout | undefined

        const finish = () => {
          settled = true
          kind.inFlight--
          clearTimeout(timer)
          if (kind.waiting.delete(hedge)) hedges.add(1, { 'content_engine.upstream.call': name, 'content_engine.hedge.outcome': 'over_budget' })
          signal?.removeEventListener('abort', onAbort)
          for (const copy of copies) copy.abort(new Error('hedge: the other copy answered first'))
        }
        const onAbort = () => {
          if (settled) return
          finish()
          reject(signal!.reason)
        }
        signal?.addEventListener('abort', onAbort, { once: true })

        const launch = (second: boolean) => {
          const controller = new AbortController()
          copies.push(controller)
          running++
          const started = performance.now()
          call(signal === undefined ? controller.signal : AbortSignal.any([signal, controller.signal])).then((value) => {
            if (settled) return
            record(kind, performance.now() - started)
            if (second) hedges.add(1, { 'content_engine.upstream.call': name, 'content_engine.hedge.outcome': 'won' })
            finish()
            resolve(value)
          }, (error: unknown) => {
            running--
            if (settled || running > 0) return
            finish()
            reject(error)
          })
          if (second) {
            // The slot is held for one p95, however fast the copy is: that paces hedges at so many
            // per p95, and a burst's ordinary tail calls answer in the meantime and leave the queue.
            setTimeout(() => {
              kind.hedging--
              drain(kind)
            }, delay).unref()
          }
        }
        function hedge () {
          kind.tokens -= 1
          kind.hedging++
          hedges.add(1, { 'content_engine.upstream.call': name, 'content_engine.hedge.outcome': 'sent' })
          launch(true)
        }

        launch(false)
        drain(kind)
        if (delay === undefined) return
        timer = setTimeout(() => {
          timer = undefined
          kind.waiting.add(hedge)
          drain(kind)
        }, delay)
      })
    },
    stats: () => Object.fromEntries([...kinds].map(([name, kind]) => [name, { p95Ms: kind.p95, samples: kind.latencies.length, budget: kind.tokens, inFlight: kind.inFlight, hedging: kind.hedging, waiting: kind.waiting.size }]))
  }
}

export type Hedger = ReturnType<typeof createHedger>
