// Preloaded into a benchmarked process (node --import ./bench/probe.ts): once a second it writes
// one JSON line of memory, descriptors and event-loop figures to fd 3, a pipe the bench reads.
// Only the bench loads it; production starts without it.
import { createWriteStream, readdirSync } from 'node:fs'
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

const timer = setInterval(() => {
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
