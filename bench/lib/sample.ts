import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { get } from 'node:http'
import { get as httpsGet } from 'node:https'

/** ESTABLISHED TCP connections from `pid` to `port`, read from /proc rather than asked of anyone. */
export function procConnections (pid: number, port: number) {
  const inodes = new Set<string>()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
        if (match !== null) inodes.add(match[1]!)
      } catch {}
    }
  } catch {
    return 0
  }
  const portHex = port.toString(16).toUpperCase().padStart(4, '0')
  let count = 0
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(table, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/)
      // columns: sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      if (columns.length > 9 && columns[3] === '01' && columns[2]!.endsWith(`:${portHex}`) && inodes.has(columns[9]!)) count++
    }
  }
  return count
}

export interface SimulatorStats {
  connections: { accepted: number, open: number, peak: number }
  requests: Record<string, number>
  inFlight: number
  peakInFlight: number
  peakStreamsPerConnection: number
  chaosFaults: number
  protocols: { 'http/1.1': number, h2: number }
}

/** Sums of Prometheus counters by one label: `{ llm: 3, image: 1 }` for name{label="llm"} 3 … */
export async function scrapeCounters (url: string, name: string, label: string) {
  const text = await getText(url)
  const sums: Record<string, number> = {}
  for (const [, labels, value] of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)`, 'gm'))) {
    const key = new RegExp(`${label}="([^"]*)"`).exec(labels!)?.[1] ?? ''
    sums[key] = (sums[key] ?? 0) + Number(value)
  }
  return sums
}

// The bench's own reads (stats, metrics) use node:http(s), one connection per read (agent: false),
// so they hold no socket open between reads and need no dispatcher of their own to trust the
// simulator's CA. A read that fails rejects: scenario.ts decides what a failed read costs.
let simulatorCa: string | undefined

/** The CA of a simulator that serves HTTPS (bench --tls), trusted by the reads below. */
export function trustSimulatorCa (pem: string) {
  simulatorCa = pem
}

function getText (url: string) {
  const tls = url.startsWith('https:')
  return new Promise<string>((resolve, reject) => {
    (tls ? httpsGet : get)(url, { agent: false, ...(tls && simulatorCa !== undefined ? { ca: simulatorCa } : {}) }, (response) => {
      let text = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).once('end', () => resolve(text)).once('error', reject)
    }).once('error', reject)
  })
}

export async function simulatorStats (origin: string): Promise<SimulatorStats> {
  return JSON.parse(await getText(`${origin}/__sim/stats`)) as SimulatorStats
}

export function percentile (values: number[], p: number) {
  if (values.length === 0) return 0
  const sorted = values.toSorted((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

export function median (values: number[]) {
  return percentile(values, 50)
}

/** CPU time (user + system) a process has used so far, in ms, from /proc: no cooperation needed. */
export function processCpuMs (pid: number) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    // After the command name: utime and stime are fields 14 and 15 of stat, 12 and 13 here.
    return (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

// USER_HZ: 100 on Linux for every architecture Node runs on.
const CLOCK_TICKS = 100
