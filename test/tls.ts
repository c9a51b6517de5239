import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Certificates {
  /** PEM files: the server's certificate (for 127.0.0.1 and localhost) and key, and the CA that signed it. */
  cert: string
  key: string
  ca: string
  /** The same server certificate and key, read, for servers started in this process. */
  pem: { cert: string, key: string }
}

/**
 * A throwaway CA and a server certificate it signed, made by openssl (which `.ci/run` installs) in a
 * temporary directory. `cleanup` is given the function that removes them: `t.after` in a test.
 */
export function throwawayCertificates (label: string, cleanup: (remove: () => void) => void): Certificates {
  const dir = mkdtempSync(join(tmpdir(), `${label}-tls-`))
  cleanup(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string) => join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=test ${label} CA`, '-keyout', file('ca.key'), '-out', file('ca.pem'))
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', file('server.key'), '-out', file('server.csr'))
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file('san.ext'), '-out', file('server.pem'))
  return {
    cert: file('server.pem'),
    key: file('server.key'),
    ca: file('ca.pem'),
    pem: { cert: readFileSync(file('server.pem'), 'utf8'), key: readFileSync(file('server.key'), 'utf8') }
  }
}
