// Preloaded into a benchmarked process (node --import ./bench/probe.ts): once a second it writes
// one JSON line of memory, descriptors and event-loop figures to fd 3, a pipe the bench reads.
// Only the bench loads it; production starts without it.
import { subscribe } from 'node:diagnostics_channel'
import { createWriteStream, readdirSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks'

const out = createWriteStream('', { fd: 3 })
out.on('error', () => {})
const delay = monitorEventLoopDelay({ resolution: 10 })
delay.enable()
let lastElu = performance.eventLoopUtilization()
// Garbage-collection pauses as V8 reports them (each 'gc' entry is the time the main thread stood
// still for one collection): the longest in each second and their sum, beside the loop's delay.
let gcLongestMs = 0
let gcMs = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcMs += entry.duration
    gcLongestMs = Math.max(gcLongestMs, entry.duration)
  }
}).observe({ entryTypes: ['gc'] })
const gc = (globalThis as { gc?: () => void }).gc
const gcEveryMs = Number(process.env.BENCH_GC_INTERVAL_MS ?? 0)
let lastGc = performance.now()

// When the process read each request that names its caller (x-bench-caller, which the stream
// bench sends): on CLOCK_MONOTONIC, which process.hrtime reads and every process on the machine
// shares, so the bench can tell a caller's wait to be read from the service's own time. Sent with
// the next line, not one write per request.
let reads: Record<string, number> = {}
subscribe('http.server.request.start', (message) => {
  const caller = (message as { request: IncomingMessage }).request.headers['x-bench-caller']
  if (typeof caller !== 'string') return
  reads[caller] = Number(process.hrtime.bigint() / 1000n)
})

const timer = setInterval(() => {
  if (Object.keys(reads).length > 0) {
    out.write(JSON.stringify({ readAtUs: reads }) + '\n')
    reads = {}
  }
  let heapAfterGc: number | undefined
  if (gc !== undefined && gcEveryMs > 0 && performance.now() - lastGc >= gcEveryMs) {
    gc()
    lastGc = performance.now()
    heapAfterGc = process.memoryUsage().heapUsed
  }
  const memory = process.memoryUsage()
  const elu = performance.eventLoopUtilization(lastElu)
  lastElu = performance.eventLoopUtilization()
  out.write(JSON.stringify({
    at: Date.now(),
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapAfterGc,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    fds: readdirSync('/proc/self/fd').length,
    eventLoopDelayP99Ms: delay.percentile(99) / 1e6,
    eventLoopUtilization: elu.utilization,
    gcLongestMs,
    gcMs
  }) + '\n')
  delay.reset()
  gcLongestMs = 0
  gcMs = 0
}, 1_000)
timer.unref()

// SIGWINCH (close-with-grace shuts the service down on SIGUSR2; a terminal resize is harmless
// here): one forced GC now, and a line with the heap after it. A forced GC blocks the loop for
// 40–90 ms at a 60 MiB heap, so the stream bench asks for one only where it measures memory, never
// while it times how fast callers are answered.
if (gc !== undefined) {
  process.on('SIGWINCH', () => {
    gc()
    out.write(JSON.stringify({ at: Date.now(), heapAfterGc: process.memoryUsage().heapUsed }) + '\n')
  })
}
