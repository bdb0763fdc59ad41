// Adds jobs with a Node bullmq Queue (the reference producer the Lua-written jobs are compared with).
//
//   REDIS_URL=redis://127.0.0.1:6379/0 QUEUE=<queue> node add.mjs '<[{name, data, opts}] JSON>'
//
// Prints the added jobs' ids as a JSON list.

import { Queue } from 'bullmq'
import IORedis from 'ioredis'

async function main() {
  const [jobsJson] = process.argv.slice(2)
  if (!process.env.REDIS_URL || !process.env.QUEUE || !jobsJson) {
    process.stderr.write("usage: REDIS_URL=... QUEUE=... node add.mjs '<[{name, data, opts}]>'\n")
    process.exit(2)
  }
  const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null })
  const queue = new Queue(process.env.QUEUE, { connection })
  try {
    const jobs = await queue.addBulk(JSON.parse(jobsJson))
    process.stdout.write(`${JSON.stringify(jobs.map((job) => job.id))}\n`)
  } finally {
    await queue.close()
    await connection.quit()
  }
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`)
  process.exit(3)
})
