// Flowcraft's own Node.js BullMQ adapter (flowcraft 2.10.1 + @flowcraft/bullmq-adapter 1.7.1) on
// bullflow's workload W3: concurrent 4-node diamonds (a -> b, a -> c, b -> d, c -> d), every node
// a no-op (output null: an undefined output would break the adapter, spec 7.2-A).
//
//   node w3.mjs --redis-url redis://127.0.0.1:PORT --redis-pid PID --workers N --runs 500 \
//     --rounds 3 --queue NAME [--concurrency C] [--step]
//
// The parent forks N worker processes (this file with --role worker): each builds a stock
// BullMQAdapter (RedisCoordinationStore, NullLogger) and calls adapter.start(). The adapter's
// BullMQ Worker has a hard-coded concurrency of 5; --concurrency C sets the Worker's concurrency
// to C after start (default: leave Flowcraft's 5). The parent is the client, doing what
// Flowcraft's example client does (spec 5.6; Flowcraft has no start-run API): HSET
// workflow:state:<runId> with JSON values incl. blueprintId and blueprintVersion, then
// queue.addBulk the start jobs ({name: 'executeNode', data: {runId, blueprintId, nodeId}}). A run
// is done when the adapter has published workflow:status:<runId> (the parent MGETs the pending
// status keys every POLL_MS); each status must be 'completed' with _outputs.a .. _outputs.d in its
// context, or the script exits 1.
//
// After a 20-run warm-up it prints one JSON line per round to stdout. CPU is the delta of
// utime + stime (/proc/<pid>/stat, getconf CLK_TCK) of the worker processes and of redis-server.
// With --step the parent prints {"ready": true, ...} after the warm-up and reads one line from
// stdin before each round (so a caller can time each round itself).

import { execFileSync, fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

import { BullMQAdapter, RedisCoordinationStore } from '@flowcraft/bullmq-adapter'
import { Queue } from 'bullmq'
import { NullLogger } from 'flowcraft'
import IORedis from 'ioredis'

const BLUEPRINT = {
  id: 'diamond',
  nodes: ['a', 'b', 'c', 'd'].map((id) => ({ id, uses: 'nothing' })),
  edges: [
    { source: 'a', target: 'b' },
    { source: 'a', target: 'c' },
    { source: 'b', target: 'd' },
    { source: 'c', target: 'd' },
  ],
}
const NODE_IDS = BLUEPRINT.nodes.map((n) => n.id)
const START_NODE_IDS = ['a']
const WARM_UP_RUNS = 20
const POLL_MS = 25
const ROUND_TIMEOUT_MS = 300_000
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'client' },
    'redis-url': { type: 'string' },
    'redis-pid': { type: 'string' },
    workers: { type: 'string', default: '1' },
    runs: { type: 'string', default: '500' },
    rounds: { type: 'string', default: '3' },
    queue: { type: 'string', default: 'flowcraft-w3' },
    concurrency: { type: 'string' },
    step: { type: 'boolean', default: false },
  },
})

function fail(message) {
  process.stderr.write(`w3.mjs: ${message}\n`)
  process.exit(1)
}

function connect(url) {
  return new IORedis(url, { maxRetriesPerRequest: null })
}

// ---------------------------------------------------------------------------------- worker

async function worker() {
  let executions = 0
  const redis = connect(args['redis-url'])
  const adapter = new BullMQAdapter({
    connection: redis,
    queueName: args.queue,
    coordinationStore: new RedisCoordinationStore(redis),
    runtimeOptions: {
      blueprints: { [BLUEPRINT.id]: BLUEPRINT },
      registry: {
        nothing: async () => {
          executions += 1
          return { output: null }
        },
      },
      logger: new NullLogger(),
    },
  })
  adapter.start()
  const bullWorker = adapter.worker // the adapter's BullMQ Worker (a protected field in TypeScript)
  if (args.concurrency) bullWorker.concurrency = Number(args.concurrency)
  await bullWorker.waitUntilReady()
  let stopping = false
  const shutdown = async () => {
    if (stopping) return
    stopping = true
    try {
      await adapter.close()
      await redis.quit()
    } finally {
      process.exit(0)
    }
  }
  process.on('message', (message) => {
    if (message === 'count') process.send({ executions })
    else if (message === 'stop') shutdown()
  })
  process.on('disconnect', shutdown)
  process.on('SIGTERM', shutdown)
  process.send({ ready: true, concurrency: bullWorker.concurrency })
}

// ---------------------------------------------------------------------------------- client

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime, stime (fields 14 and 15 of stat)
}

function sumTicks(pids) {
  return pids.reduce((total, pid) => total + cpuTicks(pid), 0)
}

function message(child, predicate) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (predicate(m)) {
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(m)
      }
    }
    const onExit = (code) => reject(new Error(`worker ${child.pid} exited (${code})`))
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

async function startRun(redis, queue, runId) {
  // Flowcraft's example client (spec 5.6), with the blueprintVersion it needs (spec 7.2-C).
  const initial = { blueprintId: BLUEPRINT.id, blueprintVersion: BLUEPRINT.metadata?.version || null }
  const fields = Object.entries(initial).flatMap(([key, value]) => [key, JSON.stringify(value)])
  await redis.hset(`workflow:state:${runId}`, ...fields)
  await queue.addBulk(
    START_NODE_IDS.map((nodeId) => ({ name: 'executeNode', data: { runId, blueprintId: BLUEPRINT.id, nodeId } })),
  )
}

function check(runId, raw) {
  const status = JSON.parse(raw)
  if (status.status !== 'completed') fail(`run ${runId}: status ${raw}`)
  const context = status.payload?.context ?? {}
  const missing = NODE_IDS.filter((id) => !(`_outputs.${id}` in context))
  if (missing.length > 0) fail(`run ${runId}: completed without outputs of ${missing.join(', ')}: ${raw}`)
}

async function workload(redis, queue, runs) {
  const runIds = Array.from({ length: runs }, () => randomUUID())
  await Promise.all(runIds.map((runId) => startRun(redis, queue, runId)))
  let pending = runIds
  const deadline = Date.now() + ROUND_TIMEOUT_MS
  while (pending.length > 0) {
    const statuses = await redis.mget(pending.map((runId) => `workflow:status:${runId}`))
    const still = []
    pending.forEach((runId, i) => {
      if (statuses[i] === null) still.push(runId)
      else check(runId, statuses[i])
    })
    pending = still
    if (pending.length === 0) break
    if (Date.now() > deadline) fail(`${pending.length} of ${runs} runs published no status in ${ROUND_TIMEOUT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}

async function executions(children) {
  const replies = children.map((child) => message(child, (m) => m && 'executions' in m))
  for (const child of children) child.send('count')
  return (await Promise.all(replies)).reduce((total, m) => total + m.executions, 0)
}

async function client() {
  const url = args['redis-url']
  const redisPid = Number(args['redis-pid'])
  const workers = Number(args.workers)
  const runs = Number(args.runs)
  const rounds = Number(args.rounds)
  if (!url || !redisPid) fail('--redis-url and --redis-pid are required')
  if (!(workers >= 1 && runs >= 1 && rounds >= 1)) fail('--workers, --runs and --rounds must be >= 1')

  const workerArgs = ['--role', 'worker', '--redis-url', url, '--queue', args.queue]
  if (args.concurrency) workerArgs.push('--concurrency', args.concurrency)
  const children = Array.from({ length: workers }, () =>
    fork(new URL(import.meta.url).pathname, workerArgs, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  )
  let stopping = false
  for (const child of children) {
    child.on('exit', (code, signal) => stopping || fail(`worker ${child.pid} exited (${code ?? signal})`))
  }
  process.on('exit', () => children.forEach((child) => child.exitCode === null && child.kill('SIGKILL')))
  const redis = connect(url)
  const queue = new Queue(args.queue, { connection: redis })
  const lines = args.step ? createInterface({ input: process.stdin })[Symbol.asyncIterator]() : null
  try {
    const ready = await Promise.all(children.map((child) => message(child, (m) => m && m.ready)))
    const concurrency = ready[0].concurrency
    await workload(redis, queue, WARM_UP_RUNS)
    let executed = await executions(children)
    if (executed !== WARM_UP_RUNS * NODE_IDS.length) {
      process.stderr.write(`w3.mjs: warm-up executed ${executed} nodes, expected ${WARM_UP_RUNS * NODE_IDS.length}\n`)
    }
    const workerPids = children.map((child) => child.pid)
    if (lines) {
      process.stdout.write(`${JSON.stringify({ ready: true, workers, concurrency, pids: workerPids })}\n`)
    }
    for (let round = 1; round <= rounds; round++) {
      if (lines && (await lines.next()).done) break
      const cpu0Workers = sumTicks(workerPids)
      const cpu0Redis = cpuTicks(redisPid)
      const t0 = process.hrtime.bigint()
      await workload(redis, queue, runs)
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      const cpuWorkers = (sumTicks(workerPids) - cpu0Workers) / CLOCK_TICKS
      const cpuRedis = (cpuTicks(redisPid) - cpu0Redis) / CLOCK_TICKS
      const nodes = runs * NODE_IDS.length
      const total = await executions(children)
      const perUs = (cpu) => Math.round((cpu / nodes) * 1e7) / 10
      process.stdout.write(
        `${JSON.stringify({
          round,
          workers,
          concurrency,
          runs,
          nodes,
          node_executions: total - executed,
          seconds: Math.round(seconds * 1e4) / 1e4,
          nodes_per_s: Math.round(nodes / seconds),
          cpu_us_per_node_workers: perUs(cpuWorkers),
          cpu_us_per_node_redis: perUs(cpuRedis),
          cpu_us_per_node: perUs(cpuWorkers + cpuRedis),
        })}\n`,
      )
      if (total - executed !== nodes) {
        process.stderr.write(`w3.mjs: round ${round} executed ${total - executed} nodes, expected ${nodes}\n`)
      }
      executed = total
    }
  } finally {
    stopping = true
    for (const child of children) if (child.connected) child.send('stop')
    await Promise.all(
      children.map(
        (child) =>
          child.exitCode !== null ||
          new Promise((resolve) => {
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
            child.once('exit', () => resolve(clearTimeout(timer)))
          }),
      ),
    )
    await queue.close()
    await redis.quit()
  }
}

if (args.role === 'worker') await worker()
else await client()
