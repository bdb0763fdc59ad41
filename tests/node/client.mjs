// A Flowcraft-style client in Node (bullmq + ioredis), written like Flowcraft's
// examples/llm-workflows/distributed-execution/src/client.ts (spec §5.6): it starts runs on a
// bullflow worker with nothing but the wire protocol.
//
//   REDIS_URL=redis://127.0.0.1:6379/0 QUEUE=flowcraft-queue \
//     node client.mjs <blueprintId> '<startNodeIds JSON>' '<initial context JSON>' <runId> [<runId> ...]
//
// For each run id (all started at once, on one connection and one Queue):
//   1. HSET workflow:state:<runId> <key> JSON.stringify(value) for every initial key, plus
//      blueprintId (and, like the published client, NOT blueprintVersion);
//   2. queue.addBulk the start jobs: name 'executeNode', data {runId, blueprintId, nodeId}, no job
//      id (bullmq assigns numeric ids);
//   3. poll GET workflow:status:<runId> every 50 ms until it is there (TIMEOUT_MS, default 20000).
// Prints one line per run id, in argument order: the parsed status JSON, re-serialized. Exits 1 on
// a timeout (after printing what it has), 2 on bad arguments.

import { Queue } from 'bullmq'
import IORedis from 'ioredis'

const POLL_MS = 50

function usage(message) {
  process.stderr.write(`${message}\nusage: node client.mjs <blueprintId> <startNodeIds JSON> <context JSON> <runId> [<runId> ...]\n`)
  process.exit(2)
}

async function waitForWorkflow(redis, runId, timeoutMs) {
  const statusKey = `workflow:status:${runId}`
  const startTime = Date.now()
  while (Date.now() - startTime < timeoutMs) {
    const statusJson = await redis.get(statusKey)
    if (statusJson) {
      return JSON.parse(statusJson)
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  return {
    status: 'timeout',
    reason: `Timeout: Client did not receive a result within ${timeoutMs}ms.`,
  }
}

async function startRun(redis, queue, blueprintId, startNodeIds, initialContextData, runId) {
  const stateKey = `workflow:state:${runId}`
  for (const [key, value] of Object.entries({ ...initialContextData, blueprintId })) {
    await redis.hset(stateKey, key, JSON.stringify(value))
  }
  const startJobs = startNodeIds.map((nodeId) => ({
    name: 'executeNode',
    data: { runId, blueprintId, nodeId },
  }))
  await queue.addBulk(startJobs)
}

async function main() {
  const [blueprintId, startIdsJson, contextJson, ...runIds] = process.argv.slice(2)
  const redisUrl = process.env.REDIS_URL
  const queueName = process.env.QUEUE || 'flowcraft-queue'
  const timeoutMs = Number(process.env.TIMEOUT_MS || 20000)
  if (!redisUrl) usage('REDIS_URL is not set')
  if (!blueprintId || !startIdsJson || !contextJson || runIds.length === 0) usage('missing arguments')
  const startNodeIds = JSON.parse(startIdsJson)
  const initialContextData = JSON.parse(contextJson)

  const redisConnection = new IORedis(redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue(queueName, { connection: redisConnection })
  let timedOut = false
  try {
    await Promise.all(
      runIds.map((runId) => startRun(redisConnection, queue, blueprintId, startNodeIds, initialContextData, runId)),
    )
    const statuses = await Promise.all(runIds.map((runId) => waitForWorkflow(redisConnection, runId, timeoutMs)))
    for (const status of statuses) {
      if (status.status === 'timeout') timedOut = true
      process.stdout.write(`${JSON.stringify(status)}\n`)
    }
  } finally {
    await queue.close()
    await redisConnection.quit()
  }
  process.exitCode = timedOut ? 1 : 0
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`)
  process.exit(3)
})
