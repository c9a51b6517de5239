import { HttpError } from './http.ts'

/**
 * Google's response field mask (the `X-Goog-FieldMask` header, a system parameter of every Google
 * REST API: https://cloud.google.com/apis/docs/system-parameters): a comma-separated list of
 * dot-separated field paths, applied through arrays to each element. Only the fields named come
 * back; a field the answer does not have is a 400, as Google answers it. `*` or no mask: all.
 */
export function applyFieldMask (answer: Record<string, unknown>, mask: string | string[] | undefined): Record<string, unknown> {
  if (mask === undefined || mask === '' || mask === '*') return answer
  const tree: Tree = new Map()
  for (const path of String(mask).split(',')) {
    const names = path.trim().split('.')
    if (names.some((name) => name === '')) throw new HttpError(400, `invalid field mask: ${String(mask)}`)
    let node = tree
    for (const [index, name] of names.entries()) {
      const selected = node.get(name)
      // A field selected whole stays whole: `a,a.b` is `a`.
      if (selected === true) break
      if (index === names.length - 1) {
        node.set(name, true)
        break
      }
      const below: Tree = selected ?? new Map()
      node.set(name, below)
      node = below
    }
  }
  return pick(answer, tree, '') as Record<string, unknown>
}

type Tree = Map<string, Tree | true>

function pick (value: unknown, tree: Tree, at: string): unknown {
  if (Array.isArray(value)) return value.map((item) => pick(item, tree, at))
  if (value === null || typeof value !== 'object') throw new HttpError(400, `invalid field mask: ${at} has no fields`)
  const picked: Record<string, unknown> = {}
  for (const [name, below] of tree) {
    const path = at === '' ? name : `${at}.${name}`
    if (!(name in value)) throw new HttpError(400, `invalid field mask: unknown field ${path}`)
    const field = (value as Record<string, unknown>)[name]
    picked[name] = below === true ? field : pick(field, below, path)
  }
  return picked
}
