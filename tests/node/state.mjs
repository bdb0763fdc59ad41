// Reads runs' context hashes the way Flowcraft's RedisContext.toJSON() does (spec §5.3): HGETALL
// workflow:state:<runId> and JSON.parse every field value.
//
//   REDIS_URL=redis://127.0.0.1:6379/0 node state.mjs <runId> [<runId> ...]
//
// Prints one JSON object: {<runId>: {context: {<key>: parsed value}, errors: [{field, raw, error}]}}
// (errors lists the fields JSON.parse rejected; Flowcraft's toJSON() would have thrown on them).

import IORedis from 'ioredis'

async function main() {
  const runIds = process.argv.slice(2)
  if (!process.env.REDIS_URL || runIds.length === 0) {
    process.stderr.write('usage: REDIS_URL=... node state.mjs <runId> [<runId> ...]\n')
    process.exit(2)
  }
  const redis = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null })
  const out = {}
  try {
    for (const runId of runIds) {
      const raw = await redis.hgetall(`workflow:state:${runId}`)
      const context = {}
      const errors = []
      for (const [field, value] of Object.entries(raw)) {
        try {
          context[field] = JSON.parse(value)
        } catch (error) {
          errors.push({ field, raw: value, error: String(error && error.message ? error.message : error) })
        }
      }
      out[runId] = { context, errors }
    }
  } finally {
    await redis.quit()
  }
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`)
  process.exit(3)
})
