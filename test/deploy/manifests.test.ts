import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { parse } from 'yaml'
import { buildApp } from '../../src/app.ts'
import { ENV_NAMES, requiredLiveVariables, simulatorUpstreams } from '../../src/config.ts'
import { testConfig } from '../helper.ts'

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')

interface EnvVar { name: string, value?: string, valueFrom?: { secretKeyRef?: { name: string, key: string } } }
interface Container {
  name: string
  image: string
  ports?: Array<{ containerPort: number }>
  env?: EnvVar[]
  startupProbe?: { httpGet: { path: string, port: number } }
  livenessProbe?: { httpGet: { path: string, port: number } }
  volumeMounts?: Array<{ name: string, mountPath: string }>
}

const service = parse(read('service.yaml'))
const template = service.spec.template
const containers: Container[] = template.spec.containers
const app = containers.find((c) => c.name === 'app')!
const env = new Map((app.env ?? []).map((variable) => [variable.name, variable]))
const dockerfile = read('Dockerfile')
const dockerEnv = new Map([...dockerfile.matchAll(/^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$/gm)].map((m) => [m[1]!, m[2]!]))

test('service.yaml is a Knative service with one app container and the Prometheus sidecar after it', () => {
  assert.equal(service.apiVersion, 'serving.knative.dev/v1')
  assert.equal(service.kind, 'Service')
  assert.deepEqual(containers.map((c) => c.name), ['app', 'collector'])
  assert.deepEqual(JSON.parse(template.metadata.annotations['run.googleapis.com/container-dependencies']), { collector: ['app'] })
  assert.equal(template.metadata.annotations['run.googleapis.com/execution-environment'], 'gen2')
  assert.equal(template.metadata.annotations['run.googleapis.com/startup-cpu-boost'], 'true')
  assert.ok(Number(template.metadata.annotations['autoscaling.knative.dev/minScale']) >= 0)
  assert.ok(Number(template.metadata.annotations['autoscaling.knative.dev/maxScale']) >= 1)
  assert.match(template.spec.serviceAccountName, /^content-engine@/)
})

test('the probe paths exist in the app and answer without calling an upstream', async (t) => {
  const config = testConfig()
  const built = await buildApp({ config, upstreams: simulatorUpstreams(config, 'http://127.0.0.1:9') })
  t.after(() => built.close())
  for (const probe of [app.startupProbe, app.livenessProbe]) {
    assert.ok(probe, 'startup and liveness probes are set')
    assert.equal(probe.httpGet.port, app.ports?.[0]?.containerPort)
    const response = await built.inject({ method: 'GET', url: probe.httpGet.path })
    assert.equal(response.statusCode, 200, probe.httpGet.path)
  }
})

test('every env name service.yaml and the Dockerfile set exists in the config schema', () => {
  assert.deepEqual([...dockerEnv.keys()], ['HOST', 'PORT', 'METRICS_PORT', 'PROVIDERS', 'TRUST_PROXY'])
  for (const name of [...env.keys(), ...dockerEnv.keys()]) assert.ok(ENV_NAMES.includes(name), `${name} is read by src/config.ts`)
})

test('every variable live mode requires on Cloud Run is set in service.yaml or comes from a secret', () => {
  assert.equal(env.get('PROVIDERS')?.value, 'live')
  const required = requiredLiveVariables({ K_SERVICE: 'content-engine', LLM_BASE_URL: env.get('LLM_BASE_URL')?.value })
  for (const name of required) {
    const variable = env.get(name)
    assert.ok(variable?.value !== undefined || variable?.valueFrom?.secretKeyRef !== undefined, `${name} is set`)
  }
  for (const name of ['LLM_API_KEY', 'IMAGE_API_KEY']) {
    assert.ok(env.get(name)?.valueFrom?.secretKeyRef, `${name} comes from Secret Manager, not a literal`)
  }
})

test('ports agree: container port, Dockerfile PORT and EXPOSE; the sidecar scrapes METRICS_PORT', () => {
  const port = app.ports?.[0]?.containerPort
  assert.equal(port, 8080)
  assert.equal(dockerEnv.get('PORT'), String(port))
  assert.match(dockerfile, new RegExp(`^EXPOSE ${port}\\b`, 'm'))
  const metricsPort = env.get('METRICS_PORT')?.value
  assert.equal(dockerEnv.get('METRICS_PORT'), metricsPort)
  const monitoring = parse(read('deploy/runmonitoring.yaml'))
  assert.equal(String(monitoring.spec.endpoints[0].port), metricsPort)
  assert.equal(monitoring.spec.endpoints[0].path, '/metrics')
  assert.equal(containers.find((c) => c.name === 'collector')?.volumeMounts?.[0]?.mountPath, '/etc/rungmp')
})

test('timeoutSeconds is longer than REQUEST_TIMEOUT_MS, so our own deadline answers first', () => {
  assert.ok(template.spec.timeoutSeconds * 1000 > Number(env.get('REQUEST_TIMEOUT_MS')?.value))
  assert.ok(template.spec.containerConcurrency <= Number(env.get('UPSTREAM_CONNECTIONS')?.value))
})

test('the Dockerfile CMD is the production start script, with node as the process', () => {
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[]
  const scripts = JSON.parse(read('package.json')).scripts
  assert.equal(['node', ...cmd].join(' '), scripts['start:prod'])
  assert.match(dockerfile, /^FROM gcr\.io\/distroless\/nodejs24-debian12:nonroot$/m)
  assert.match(dockerfile, /^FROM node:24-bookworm-slim AS build$/m)
})

test('cloudbuild.yaml tests, builds, pushes, renders by digest and replaces the service, in that order', () => {
  const build = parse(read('cloudbuild.yaml'))
  assert.deepEqual(build.steps.map((step: { id: string }) => step.id), ['test', 'build', 'push', 'render', 'deploy'])
  assert.match(build.steps[0].args.join(' '), /npm ci .*&& npm test/)
  assert.match(build.steps[3].args.join(' '), /images describe[\s\S]*digest[\s\S]*service\.yaml > service\.rendered\.yaml/)
  assert.deepEqual(build.steps[4].args.slice(0, 5), ['gcloud', 'run', 'services', 'replace', 'service.rendered.yaml'])
  for (const name of ['_REGION', '_REPOSITORY', '_SERVICE']) assert.ok(name in build.substitutions, name)
})
