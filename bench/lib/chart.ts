import type { ScenarioResult, Sample } from './scenario.ts'

const COLOURS = ['#1f77b4', '#2ca02c', '#d62728', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf']
const PANELS: Array<{ key: keyof Sample, title: string }> = [
  { key: 'rssMiB', title: 'RSS (MiB)' },
  { key: 'upstreamOpenProc', title: 'open upstream connections (/proc)' },
  { key: 'p99Ms', title: 'p99 latency per second (ms)' }
]
const WIDTH = 760
const PANEL_HEIGHT = 170
const MARGIN = { left: 60, right: 20, top: 28, bottom: 26 }

const escape = (text: string) => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)

/** One SVG: a panel per metric, a line per run, time in seconds along the bottom. */
export function chart (runs: Array<{ label: string, result: ScenarioResult }>, title: string) {
  const maxT = Math.max(1, ...runs.flatMap(({ result }) => result.samples.map((s) => s.t)))
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom
  const parts: string[] = []
  PANELS.forEach(({ key, title: panelTitle }, index) => {
    const top = 40 + index * PANEL_HEIGHT
    const maxY = Math.max(1, ...runs.flatMap(({ result }) => result.samples.map((s) => Number(s[key]) || 0))) * 1.1
    const x = (t: number) => MARGIN.left + (t / maxT) * plotWidth
    const y = (v: number) => top + MARGIN.top + plotHeight - (v / maxY) * plotHeight
    parts.push(`<text x="${MARGIN.left}" y="${top + 18}" font-size="13" font-weight="bold">${escape(panelTitle)}</text>`)
    parts.push(`<rect x="${MARGIN.left}" y="${top + MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#ccc"/>`)
    for (const fraction of [0, 0.5, 1]) {
      const value = (maxY / 1.1) * fraction
      parts.push(`<text x="${MARGIN.left - 6}" y="${y(value) + 4}" font-size="10" text-anchor="end">${Math.round(value)}</text>`)
    }
    parts.push(`<text x="${WIDTH - MARGIN.right}" y="${top + PANEL_HEIGHT - 6}" font-size="10" text-anchor="end">${Math.round(maxT)} s</text>`)
    runs.forEach(({ result }, runIndex) => {
      const points = result.samples.map((s) => `${x(s.t).toFixed(1)},${y(Number(s[key]) || 0).toFixed(1)}`).join(' ')
      parts.push(`<polyline fill="none" stroke="${COLOURS[runIndex % COLOURS.length]}" stroke-width="1.6" points="${points}"/>`)
    })
  })
  // Four legend entries a row, so every run is named however many there are.
  const legendTop = 40 + PANELS.length * PANEL_HEIGHT
  const legend = runs.map(({ label }, index) => {
    const x = MARGIN.left + (index % 4) * 170
    const y = legendTop + Math.floor(index / 4) * 18
    return `<rect x="${x}" y="${y}" width="12" height="12" fill="${COLOURS[index % COLOURS.length]}"/>` +
      `<text x="${x + 16}" y="${y + 10}" font-size="12">${escape(label)}</text>`
  }).join('')
  const height = legendTop + Math.ceil(runs.length / 4) * 18 + 12
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="${MARGIN.left}" y="24" font-size="15" font-weight="bold">${escape(title)}</text>` +
    parts.join('') + legend + '</svg>\n'
}
