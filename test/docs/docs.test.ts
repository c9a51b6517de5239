import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ENV_NAMES } from '../../src/config.ts'
import { catalogue } from '../../src/errors.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string) => readFileSync(join(root, path), 'utf8')
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]

/** The first cell of every row of every Markdown table in `text`. */
function firstCells (text: string) {
  return text.split('\n').filter((line) => /^\|[^-]/.test(line)).map((line) => line.split('|')[1]!.trim())
}

/** `a_{b,c}_d` names two metrics; the docs use the braces to keep families on one row. */
function expandBraces (name: string): string[] {
  const match = /\{([^}]*)\}/.exec(name)
  if (match === null) return [name]
  return match[1]!.split(',').flatMap((part) => expandBraces(name.replace(match[0], part)))
}

// GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens.
function anchors (markdown: string) {
  return new Set(markdown.split('\n').filter((line) => /^#{1,6} /.test(line)).map((line) =>
    line.replace(/^#+ /, '').trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')))
}

test('every variable the config reads has a row in docs/configuration.md and a line in .env.example, and no row names a variable that is gone', () => {
  const rows = firstCells(read('docs/configuration.md')).flatMap((cell) => [...cell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((match) => match[1]!))
  const example = read('.env.example')
  for (const name of ENV_NAMES) {
    assert.ok(rows.includes(name), `${name} has a row in docs/configuration.md`)
    assert.match(example, new RegExp(`^${name}=`, 'm'), `${name} in .env.example`)
  }
  assert.deepEqual(rows.filter((name) => !ENV_NAMES.includes(name)), [], 'rows for variables the config does not read')
})

test('every error code has a row in docs/api.md with its status, and every row is a code the service has', () => {
  const rows = read('docs/api.md').split('\n').filter((line) => /^\| \d{3} \|/.test(line)).map((line) => {
    const [, status, code] = line.split('|').map((cell) => cell.trim())
    return { status: Number(status), code: code!.replaceAll('`', '') }
  })
  for (const [code, { status }] of Object.entries(catalogue)) {
    assert.ok(rows.some((row) => row.code === code && row.status === status), `${status} ${code} in docs/api.md`)
  }
  for (const row of rows) assert.equal(catalogue[row.code as keyof typeof catalogue]?.status, row.status, `${row.status} ${row.code} is in src/errors.ts`)
})

test('every metric the code creates is in docs/operations.md under its Prometheus name', () => {
  const documented = new Set(firstCells(read('docs/operations.md')).flatMap((cell) =>
    [...cell.matchAll(/`([a-z0-9_{},]+)`/g)].flatMap((match) => expandBraces(match[1]!))))
  const sources = ['src/telemetry/instruments.ts', 'src/telemetry/sdk.ts'].map(read).join('\n')
  const created = [...sources.matchAll(/create(Histogram|Counter|ObservableGauge)\('([a-z0-9_.]+)'/g)]
  assert.ok(created.length >= 7, `found the metrics the code creates: ${created.length}`)
  for (const [, kind, name] of created) {
    const prometheus = name!.replaceAll('.', '_') + (kind === 'Counter' ? '_total' : '')
    assert.ok(documented.has(prometheus), `${prometheus} documented`)
  }
  for (const gauge of ['connected', 'free', 'pending', 'queued', 'running']) {
    assert.ok(documented.has(`content_engine_upstream_pool_${gauge}`), `pool gauge ${gauge} documented`)
  }
})

test('every relative link in README.md and docs/ points at a file that exists, and at a heading that exists', () => {
  const broken: string[] = []
  for (const page of pages) {
    const text = read(page).replace(/```[\s\S]*?```/g, '')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!)) continue
      const [path, anchor] = target!.split('#') as [string, string | undefined]
      const file = path === '' ? page : join(dirname(page), path)
      if (!existsSync(join(root, file))) { broken.push(`${page}: ${target} (no file)`); continue }
      if (anchor !== undefined && file.endsWith('.md') && !anchors(read(file)).has(anchor)) broken.push(`${page}: ${target} (no heading)`)
    }
  }
  assert.deepEqual(broken, [])
})

test('the README stays a front page: short, with both commands and an example near the top', () => {
  const readme = read('README.md')
  const lines = readme.split('\n')
  assert.ok(lines.length <= 170, `README.md has ${lines.length} lines`)
  const at = (needle: string) => lines.findIndex((line) => line.includes(needle))
  assert.ok(at('npm install && npm start') >= 0 && at('npm install && npm start') < 40, 'npm install && npm start near the top')
  assert.ok(at('npm test') >= 0 && at('npm test') < 40, 'npm test near the top')
  assert.ok(at('curl ') >= 0 && at('curl ') < 80, 'a working example near the top')
})
