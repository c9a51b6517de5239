import neostandard from 'neostandard'
import contentEngine from './eslint/plugin.ts'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'bench/reports/**'] }),
  {
    files: ['src/**/*.ts'],
    ignores: ['src/plugins/upstream-pool.ts'],
    plugins: { 'content-engine': contentEngine },
    rules: {
      'content-engine/one-http-client': 'error',
      'content-engine/consume-response-body': 'error'
    }
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/plugins/redis.ts'],
    plugins: { 'content-engine': contentEngine },
    rules: { 'content-engine/one-redis-client': 'error' }
  }
]
