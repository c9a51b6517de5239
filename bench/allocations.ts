// Where a benchmarked process allocates. Preloaded into the service by the capacity bench:
//   npm run bench -- --capacity --tls --connections 250 --duration 30 --node-args=--import=./bench/allocations.ts
// it samples allocations for ALLOC_SPAN_MS (20 s) from ALLOC_DELAY_MS (8 s) after start, collected
// objects included (V8's sampling heap profiler, through the inspector: `node --heap-prof` keeps only
// what is still alive at exit), and writes bench/reports/allocations-PID.heapprofile. Then
//   npm run bench:allocations -- bench/reports/allocations-PID.heapprofile
// prints the bytes allocated by function, by itself and with what it calls. Only the bench loads it.
import { readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children: ProfileNode[] }
interface Profile { head: ProfileNode, samples: Array<{ size: number, nodeId: number }> }

const file = process.argv[2]
if (file?.endsWith('.heapprofile')) report(JSON.parse(readFileSync(file, 'utf8')) as Profile)
else await sample()

async function sample () {
  const session = new Session()
  session.connect()
  await session.post('HeapProfiler.enable')
  setTimeout(async () => {
    await session.post('HeapProfiler.startSampling', { samplingInterval: 32_768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    setTimeout(async () => {
      const { profile } = await session.post('HeapProfiler.stopSampling')
      writeFileSync(new URL(`./reports/allocations-${process.pid}.heapprofile`, import.meta.url), JSON.stringify(profile))
    }, Number(process.env.ALLOC_SPAN_MS ?? 20_000)).unref()
  }, Number(process.env.ALLOC_DELAY_MS ?? 8_000)).unref()
}

function report (profile: Profile) {
  const parent = new Map<number, ProfileNode>()
  const byId = new Map<number, ProfileNode>()
  const walk = (node: ProfileNode) => {
    byId.set(node.id, node)
    for (const child of node.children) {
      parent.set(child.id, node)
      walk(child)
    }
  }
  walk(profile.head)
  const name = (node: ProfileNode) => `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/.*node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src)\//, '$1/')}:${node.callFrame.lineNumber + 1}`
  const own = new Map<string, number>()
  const withCallees = new Map<string, number>()
  let total = 0
  for (const { size, nodeId } of profile.samples) {
    total += size
    let node: ProfileNode | undefined = byId.get(nodeId)!
    own.set(name(node), (own.get(name(node)) ?? 0) + size)
    const seen = new Set<string>()
    for (; node !== undefined; node = parent.get(node.id)) {
      if (seen.has(name(node))) continue
      seen.add(name(node))
      withCallees.set(name(node), (withCallees.get(name(node)) ?? 0) + size)
    }
  }
  const top = (sizes: Map<string, number>, count: number) => [...sizes].sort((a, b) => b[1] - a[1]).slice(0, count)
    .map(([where, size]) => `${(size / 1048576).toFixed(0).padStart(6)} MiB ${(100 * size / total).toFixed(1).padStart(5)} %  ${where}`).join('\n')
  console.log(`${(total / 1048576).toFixed(0)} MiB allocated while sampling\n\nby itself:\n${top(own, 25)}\n\nwith what it calls:\n${top(withCallees, 40)}`)
}
