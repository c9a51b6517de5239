// node bench/profile-bursts.ts REPORT.json PROFILE.cpuprofile: where the service's CPU went while
// it read a burst of streams. Run the stream bench with the service under the profiler first:
//   npm run bench:stream -- --streams 100 --bursts 6 --pace-scale 1 --tls \
//     --node-args="--cpu-prof --cpu-prof-interval=100 --cpu-prof-dir=/tmp/prof" --name NAME
// then pass its JSON report (each burst's first and last request read, on CLOCK_MONOTONIC) and the
// profile. Prints µs per request read, by package and by function.
// A capacity report works too (`npm run bench -- --capacity ... --node-args=...`, the service's
// profile being the first of the two written): the whole profile, warm-up included, is then
// charged to the posts of the service's run.
import { readFileSync } from 'node:fs'
import { attribute, type CpuProfile } from './lib/cpu-profile.ts'

const [reportFile, profileFile] = process.argv.slice(2)
if (reportFile === undefined || profileFile === undefined) {
  console.error('usage: node bench/profile-bursts.ts REPORT.json PROFILE.cpuprofile')
  process.exit(2)
}
interface StreamReport { streams: number, readWindowsUs: Array<{ fromUs: number, toUs: number }> }
interface CapacityReport { results: Array<{ result: { variant: string, requests: number } }> }
const report = JSON.parse(readFileSync(reportFile, 'utf8')) as StreamReport | CapacityReport
const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile

const bursts = 'readWindowsUs' in report
const windows = bursts ? report.readWindowsUs : [{ fromUs: -Infinity, toUs: Infinity }]
const owners = new Map<string, number>()
const functions = new Map<string, number>()
let windowUs = 0
for (const { fromUs, toUs } of windows) {
  windowUs += toUs - fromUs
  const { totals, functions: byFunction } = attribute(profile, fromUs, toUs, /./)
  for (const [key, us] of totals) owners.set(key, (owners.get(key) ?? 0) + us)
  for (const [key, us] of byFunction) functions.set(key, (functions.get(key) ?? 0) + us)
}
// The first request of each burst is read at the window's start: the window holds the others.
const posts = bursts ? undefined : report.results.find(({ result }) => result.variant === 'service')?.result.requests
if (!bursts && posts === undefined) {
  console.error(`${reportFile}: neither a stream report (readWindowsUs) nor a capacity report with a service run`)
  process.exit(2)
}
const requests = bursts ? report.readWindowsUs.length * Math.max(1, report.streams - 1) : posts!
const busyUs = [...owners.values()].reduce((sum, us) => sum + us, 0)
const per = (us: number) => (us / requests).toFixed(1).padStart(7)
if (bursts) console.log(`${windows.length} bursts, ${(windowUs / 1000).toFixed(1)} ms reading: ${per(windowUs)} µs a request, of which busy ${per(busyUs)} µs`)
else console.log(`${requests} posts: busy ${per(busyUs)} µs a post`)
console.log('\nby package, µs a request')
for (const [key, us] of [...owners].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`${per(us)}  ${key}`)
console.log('\nby function (the nearest frame outside Node), µs a request')
for (const [key, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${per(us)}  ${key}`)

// The frame each sample was in, Node's own and native code included.
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const leaves = new Map<string, number>()
let at = profile.startTime
for (let index = 0; index < profile.samples.length; index++) {
  const weight = profile.timeDeltas[index] ?? 0
  at += weight
  if (!windows.some(({ fromUs, toUs }) => at >= fromUs && at <= toUs)) continue
  const frame = byId.get(profile.samples[index]!)?.callFrame
  if (frame === undefined || frame.functionName === '(idle)') continue
  const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${frame.lineNumber + 1}`
  leaves.set(key, (leaves.get(key) ?? 0) + weight)
}
console.log('\nby the frame each sample was in, µs a request')
for (const [key, us] of [...leaves].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${per(us)}  ${key}`)
