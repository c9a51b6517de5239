// Lint rules against the anti-pattern this service exists to prevent: an HTTP client made per
// call, or a response body left unread (undici README: "always either consume or cancel the
// response body"). eslint.config.js applies them to src/, except the upstream-pool plugin.
import type { Rule, Scope } from 'eslint'
import type * as ESTree from 'estree'

const CLIENT_CLASSES = new Set(['Agent', 'Pool', 'Client', 'BalancedPool', 'RetryAgent', 'ProxyAgent', 'EnvHttpProxyAgent', 'RoundRobinPool', 'H2CClient', 'Socks5ProxyAgent'])
const CALLS_NEEDING_DISPATCHER = new Set(['request', 'fetch', 'stream', 'pipeline'])
const CONSUMERS = new Set(['text', 'json', 'dump', 'arrayBuffer', 'blob', 'bytes', 'formData', 'destroy', 'resume', 'pipe', 'cancel'])

type Node = ESTree.Node & Rule.NodeParentExtension

/** Maps local names bound by `import ... from` one of `sources` to the export they stand for. */
function importBindings (program: ESTree.Program, sources: readonly string[]) {
  const named = new Map<string, string>()
  const namespaces = new Set<string>()
  for (const statement of program.body) {
    if (statement.type !== 'ImportDeclaration' || !sources.includes(String(statement.source.value))) continue
    for (const specifier of statement.specifiers) {
      if (specifier.type === 'ImportSpecifier') {
        const imported = specifier.imported.type === 'Identifier' ? specifier.imported.name : String(specifier.imported.value)
        named.set(specifier.local.name, imported)
      } else if (specifier.type === 'ImportDefaultSpecifier') {
        named.set(specifier.local.name, 'default')
      } else {
        namespaces.add(specifier.local.name)
      }
    }
  }
  return (callee: ESTree.Node): string | undefined => {
    if (callee.type === 'Identifier') return named.get(callee.name)
    if (callee.type === 'MemberExpression' && callee.object.type === 'Identifier' && namespaces.has(callee.object.name) && callee.property.type === 'Identifier') {
      return callee.property.name
    }
    return undefined
  }
}

function isGlobal (scope: Scope.Scope, name: string) {
  for (let current: Scope.Scope | null = scope; current !== null; current = current.upper) {
    const variable = current.set.get(name)
    if (variable !== undefined) return variable.defs.length === 0
  }
  return true
}

export const oneHttpClient: Rule.RuleModule = {
  meta: {
    type: 'problem',
    docs: { description: 'Every upstream call goes through the one dispatcher made by the upstream-pool plugin.' },
    schema: [],
    messages: {
      newClient: 'Do not construct an undici {{name}} here: use the shared dispatcher (app.upstream) from the upstream-pool plugin.',
      globalFetch: 'Do not call the global fetch: it uses a hidden global pool. Call the shared dispatcher (app.upstream).',
      missingDispatcher: 'undici {{name}}() without a `dispatcher` option uses the global dispatcher: pass app.upstream.',
      globalDispatcher: 'Do not set a global dispatcher: pass the shared dispatcher explicitly.'
    }
  },
  create (context) {
    let undici: ReturnType<typeof importBindings> = () => undefined
    return {
      Program (program) { undici = importBindings(program, ['undici']) },
      NewExpression (node) {
        const name = undici(node.callee)
        if (name !== undefined && CLIENT_CLASSES.has(name)) context.report({ node, messageId: 'newClient', data: { name } })
      },
      CallExpression (node) {
        const { callee } = node
        const name = undici(callee)
        if (name === 'setGlobalDispatcher') return context.report({ node, messageId: 'globalDispatcher' })
        if (name !== undefined && CALLS_NEEDING_DISPATCHER.has(name)) {
          const options = node.arguments[1]
          const hasDispatcher = options?.type === 'ObjectExpression' && options.properties.some((property) =>
            property.type === 'SpreadElement' ||
            (property.key.type === 'Identifier' && property.key.name === 'dispatcher'))
          if (!hasDispatcher) context.report({ node, messageId: 'missingDispatcher', data: { name } })
          return
        }
        const globalFetch = (callee.type === 'Identifier' && callee.name === 'fetch' && isGlobal(context.sourceCode.getScope(node), 'fetch')) ||
          (callee.type === 'MemberExpression' && callee.object.type === 'Identifier' && ['globalThis', 'global', 'window', 'self'].includes(callee.object.name) &&
            callee.property.type === 'Identifier' && callee.property.name === 'fetch')
        if (globalFetch) context.report({ node, messageId: 'globalFetch' })
      }
    }
  }
}

// Redis clients: ioredis (and its fork iovalkey) construct them with `new`, node-redis with createClient.
const REDIS_MODULES = ['ioredis', 'iovalkey', 'redis', '@redis/client']
const REDIS_FACTORIES = new Set(['createClient', 'createCluster', 'createSentinel'])

export const oneRedisClient: Rule.RuleModule = {
  meta: {
    type: 'problem',
    docs: { description: 'Redis is reached through the one client the redis plugin makes (app.redis).' },
    schema: [],
    messages: { newClient: 'Do not make a Redis client here: use app.redis, the one client the redis plugin makes in onReady and closes in onClose.' }
  },
  create (context) {
    let redis: ReturnType<typeof importBindings> = () => undefined
    return {
      Program (program) { redis = importBindings(program, REDIS_MODULES) },
      NewExpression (node) {
        if (redis(node.callee) !== undefined) context.report({ node, messageId: 'newClient' })
      },
      CallExpression (node) {
        const name = redis(node.callee)
        if (name !== undefined && REDIS_FACTORIES.has(name)) context.report({ node, messageId: 'newClient' })
      }
    }
  }
}

/** True when a reference to a body (or to the response holding it) reads, cancels or hands it on. */
function consumes (reference: Scope.Reference, viaResponse: boolean, context: Rule.RuleContext): boolean {
  const identifier = reference.identifier as Node
  const parent = identifier.parent
  if (!viaResponse) {
    if (parent.type === 'MemberExpression' && parent.object === identifier) {
      return parent.property.type === 'Identifier' && CONSUMERS.has(parent.property.name)
    }
    // for await (const chunk of body), passing it to a function, returning it: read or handed on.
    return parent.type === 'ForOfStatement' || parent.type === 'CallExpression' || parent.type === 'ReturnStatement' ||
      parent.type === 'VariableDeclarator' || parent.type === 'AssignmentExpression' || parent.type === 'Property' || parent.type === 'ArrayExpression'
  }
  if (parent.type === 'MemberExpression' && parent.object === identifier) {
    if (parent.property.type !== 'Identifier' || parent.property.name !== 'body') return false
    const use = (parent as Node).parent
    if (use.type === 'MemberExpression') return use.property.type === 'Identifier' && CONSUMERS.has(use.property.name)
    return use.type === 'ForOfStatement' || use.type === 'CallExpression' || use.type === 'ReturnStatement'
  }
  if (parent.type === 'VariableDeclarator' && parent.init === identifier && parent.id.type === 'ObjectPattern') {
    return patternConsumesBody(parent, context)
  }
  // The whole response was returned, passed on or stored: its new owner answers for the body.
  return parent.type === 'CallExpression' || parent.type === 'ReturnStatement' || parent.type === 'Property' || parent.type === 'ArrayExpression' ||
    (parent.type === 'VariableDeclarator' && parent.init === identifier) || (parent.type === 'AssignmentExpression' && parent.right === identifier)
}

function patternConsumesBody (declarator: ESTree.VariableDeclarator, context: Rule.RuleContext) {
  const pattern = declarator.id as ESTree.ObjectPattern
  if (pattern.properties.some((property) => property.type === 'RestElement')) return true
  const bodyProperty = pattern.properties.find((property): property is ESTree.AssignmentProperty =>
    property.type === 'Property' && property.key.type === 'Identifier' && property.key.name === 'body')
  if (bodyProperty === undefined) return false
  const variable = context.sourceCode.getDeclaredVariables(declarator).find((v) => v.identifiers.includes(bodyProperty.value as ESTree.Identifier))
  return variable !== undefined && variable.references.some((reference) => !reference.init && consumes(reference, false, context))
}

export const consumeResponseBody: Rule.RuleModule = {
  meta: {
    type: 'problem',
    docs: { description: 'An undici response body must be read, dumped or destroyed, error statuses included.' },
    schema: [],
    messages: { unconsumed: 'This response body is never consumed or dumped in this function: the socket cannot return to the pool.' }
  },
  create (context) {
    return {
      'AwaitExpression > CallExpression' (node: ESTree.CallExpression & Rule.NodeParentExtension) {
        const { callee } = node
        const isRequest = (callee.type === 'MemberExpression' && callee.property.type === 'Identifier' && callee.property.name === 'request') ||
          (callee.type === 'Identifier' && callee.name === 'request')
        if (!isRequest) return
        const holder = (node.parent as Node).parent
        let ok = true
        if (holder.type === 'VariableDeclarator' && holder.id.type === 'ObjectPattern') {
          ok = patternConsumesBody(holder, context)
        } else if (holder.type === 'VariableDeclarator' && holder.id.type === 'Identifier') {
          const [variable] = context.sourceCode.getDeclaredVariables(holder)
          ok = variable !== undefined && variable.references.some((reference) => !reference.init && consumes(reference, true, context))
        } else if (holder.type === 'AssignmentExpression' && holder.left.type === 'Identifier') {
          const name = holder.left.name
          const variable = findVariable(context.sourceCode.getScope(holder), name)
          ok = variable !== undefined && variable.references.some((reference) => reference.identifier !== holder.left && consumes(reference, true, context))
        } else if (holder.type === 'ExpressionStatement') {
          ok = false
        }
        if (!ok) context.report({ node, messageId: 'unconsumed' })
      }
    }
  }
}

function findVariable (scope: Scope.Scope, name: string) {
  for (let current: Scope.Scope | null = scope; current !== null; current = current.upper) {
    const variable = current.set.get(name)
    if (variable !== undefined) return variable
  }
  return undefined
}

export default {
  meta: { name: 'content-engine' },
  rules: { 'one-http-client': oneHttpClient, 'one-redis-client': oneRedisClient, 'consume-response-body': consumeResponseBody }
}
