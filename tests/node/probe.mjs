// What a Node bullmq Queue sees of a queue bullflow's Lua scripts filled: getJobCounts(),
// getJobs() per state, and getJob() of given ids.
//
//   REDIS_URL=redis://127.0.0.1:6379/0 QUEUE=<queue> node probe.mjs [<jobId> ...]
//
// Prints one JSON object: {counts, wait: [job], delayed: [job], completed: [job], jobs: {<id>: job|null}}
// where job = {id, name, data, opts, timestamp, delay, attemptsMade, finishedOn, returnvalue, state}.

import { Queue } from 'bullmq'
import IORedis from 'ioredis'

function summary(job, state) {
  if (!job) return null
  return {
    id: job.id,
    name: job.name,
    data: job.data,
    opts: job.opts,
    timestamp: job.timestamp,
    delay: job.delay,
    attemptsMade: job.attemptsMade,
    finishedOn: job.finishedOn ?? null,
    returnvalue: job.returnvalue ?? null,
    state,
  }
}

async function main() {
  const jobIds = process.argv.slice(2)
  if (!process.env.REDIS_URL || !process.env.QUEUE) {
    process.stderr.write('usage: REDIS_URL=... QUEUE=... node probe.mjs [<jobId> ...]\n')
    process.exit(2)
  }
  const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null })
  const queue = new Queue(process.env.QUEUE, { connection })
  try {
    const out = { counts: await queue.getJobCounts(), jobs: {} }
    for (const state of ['wait', 'delayed', 'completed']) {
      out[state] = (await queue.getJobs([state])).map((job) => summary(job, state))
    }
    for (const id of jobIds) {
      const job = await queue.getJob(id)
      out.jobs[id] = summary(job, job ? await job.getState() : null)
    }
    process.stdout.write(`${JSON.stringify(out)}\n`)
  } finally {
    await queue.close()
    await connection.quit()
  }
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`)
  process.exit(3)
})
