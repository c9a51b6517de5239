import { z } from 'zod'

// The pieces every environment schema shares. Only src/server.ts and the telemetry preload hand
// process.env to a schema; everything else receives the frozen result.

export const MS = z.coerce.number().int().positive()
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
/** A duration as `24h`, `90m`, `30s`, `500ms` or `2d`; a bare number is seconds. Parsed to milliseconds. */
export const duration = z.union([z.number(), z.string().trim().regex(/^\d+(ms|s|m|h|d)?$/, 'expected a duration such as 24h, 90m, 30s or 500ms')
  .transform((text) => {
    const [, amount, unit = 's'] = /^(\d+)(ms|s|m|h|d)?$/.exec(text)!
    return Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS]
  })]).pipe(z.number().int().positive())
export const optionalText = z.string().trim().min(1).optional()
export const optionalUrl = z.url({ protocol: /^https?$/ }).optional()
export const commaList = z.string().default('').transform((list) => list.split(',').map((item) => item.trim()).filter(Boolean))

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Parses `env` with `schema`, naming every variable at fault at once. */
export function parseEnv<S extends z.ZodType> (schema: S, env: Record<string, string | undefined>, what: string): z.infer<S> {
  // An empty variable means "not set", as in most .env tooling; otherwise "" fails as a bad URL.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''))
  const parsed = schema.safeParse(present)
  if (!parsed.success) throw new ConfigError(`Invalid ${what}:\n${z.prettifyError(parsed.error)}`)
  return parsed.data
}

export function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}
