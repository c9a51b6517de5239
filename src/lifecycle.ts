// Work that must run after the app has closed, in order: the telemetry preload registers its
// flush here, and server.ts runs it inside the graceful-shutdown path. A plain registry keeps the
// app from importing the telemetry SDK.
const hooks: Array<() => Promise<void>> = []

export function onShutdown (hook: () => Promise<void>) {
  hooks.push(hook)
}

export async function runShutdownHooks () {
  for (const hook of hooks.splice(0)) await hook()
}
