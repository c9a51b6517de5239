// Hedged requests ("The Tail at Scale", Dean and Barroso, CACM 2013): when a call has been out
// longer than the p95 its kind has shown, send a second one and take whichever answers first;
// the loser is aborted. A token bucket caps hedges at `ratio` of calls plus a small reserve, so a
// backend that is slow for everyone gets at most that much extra load (grafana/loki#4826 on hedging amplifying load).
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
      kind = { latencies: [], next: 0, p95: undefined, tokens: reserve }
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
      const delay = options.ratio > 0 ? kind.p95 : undefined
      return new Promise<T>((resolve, reject) => {
        const copies: AbortController[] = []
        let running = 0
        let settled = false
        let timer: NodeJS.Timeout | undefined

        const finish = () => {
          settled = true
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          for (const copy of copies) copy.abort(new Error('hedge: the other copy answered first'))
        }
        const onAbort = () => {
          if (settled) return
          finish()
          reject(signal!.reason)
        }
        signal?.addEventListener('abort', onAbort, { once: true })

        const launch = (hedge: boolean) => {
          const controller = new AbortController()
          copies.push(controller)
          running++
          const started = performance.now()
          call(signal === undefined ? controller.signal : AbortSignal.any([signal, controller.signal])).then((value) => {
            if (settled) return
            record(kind, performance.now() - started)
            if (hedge) hedges.add(1, { 'content_engine.upstream.call': name, 'content_engine.hedge.outcome': 'won' })
            finish()
            resolve(value)
          }, (error: unknown) => {
            running--
            if (settled || running > 0) return
            finish()
            reject(error)
          })
        }

        launch(false)
        if (delay === undefined) return
        timer = setTimeout(() => {
          timer = undefined
          if (kind.tokens < 1) {
            hedges.add(1, { 'content_engine.upstream.call': name, 'content_engine.hedge.outcome': 'over_budget' })
            return
          }
          kind.tokens -= 1
          hedges.add(1, { 'content_engine.upstream.call': name, 'content_engine.hedge.outcome': 'sent' })
          launch(true)
        }, delay)
      })
    },
    stats: () => Object.fromEntries([...kinds].map(([name, kind]) => [name, { p95Ms: kind.p95, samples: kind.latencies.length, budget: kind.tokens }]))
  }
}

export type Hedger = ReturnType<typeof createHedger>
