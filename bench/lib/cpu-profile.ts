// Reading V8 CPU profiles (node --cpu-prof): which package's code each sample was in.
export interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
export interface CpuProfile { nodes: ProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

export const TELEMETRY = /^(?:@opentelemetry\/|@fastify\/otel$|require-in-the-middle$|import-in-the-middle$)/

/**
 * The package a frame's code belongs to: the innermost `node_modules/<name>` (a package npm had
 * to nest under another counts as itself), or the service's own build.
 */
export function owner (url: string) {
  const match = [...url.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)].at(-1)
  if (match !== undefined) return match[1]!
  return url.includes('/dist/') ? 'service code (dist/)' : url
}

/**
 * CPU µs by owner for the samples between `fromUs` and `toUs` (CLOCK_MONOTONIC, the clock both V8's
 * profile timestamps and process.hrtime read). A sample in Node's own code or in native code is
 * charged to the nearest JavaScript caller outside Node (so `new URL()` called by an
 * instrumentation counts for the instrumentation); garbage collection is its own line.
 */
export function attribute (profile: CpuProfile, fromUs: number, toUs: number, detail: RegExp = TELEMETRY) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const totals = new Map<string, number>()
  // The share of the owners `detail` matches (the telemetry packages), again by function.
  const functions = new Map<string, number>()
  let at = profile.startTime
  for (let index = 0; index < profile.samples.length; index++) {
    at += profile.timeDeltas[index] ?? 0
    // A sample's time delta is the time since the previous one: the CPU it stands for.
    const weight = profile.timeDeltas[index] ?? 0
    if (at < fromUs || at > toUs) continue
    let node = byId.get(profile.samples[index]!)
    const leaf = node?.callFrame.functionName
    if (leaf === '(idle)') continue
    let key = leaf === '(garbage collector)' ? 'garbage collection' : 'Node and V8 (no JavaScript caller)'
    while (node !== undefined) {
      const { url, functionName, lineNumber } = node.callFrame
      if (url !== '' && !url.startsWith('node:')) {
        key = owner(url)
        if (detail.test(key)) {
          const name = `${key}: ${functionName === '' ? `(anonymous, line ${lineNumber + 1})` : functionName}`
          functions.set(name, (functions.get(name) ?? 0) + weight)
        }
        break
      }
      const up = parent.get(node.id)
      node = up === undefined ? undefined : byId.get(up)
    }
    totals.set(key, (totals.get(key) ?? 0) + weight)
  }
  return { totals, functions }
}
