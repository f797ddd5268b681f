// Starts the Durable Streams reference server, file-backed, for benchmarks.
//
//   node reference-server.mjs PORT DATA_DIR
//
// With `dataDir` set the server keeps each stream in a log file (metadata in
// LMDB) and fdatasyncs every append before acknowledging it (concurrent
// appends to one file share one fdatasync).
import { mkdirSync } from "node:fs"
import { DurableStreamTestServer } from "@durable-streams/server"

const port = Number(process.argv[2])
const dataDir = process.argv[3]
if (!Number.isInteger(port) || port <= 0 || !dataDir) {
  console.error("usage: node reference-server.mjs PORT DATA_DIR")
  process.exit(2)
}
mkdirSync(dataDir, { recursive: true })

const server = new DurableStreamTestServer({ port, host: "127.0.0.1", dataDir })
const url = await server.start()
console.log(`reference server on ${url} (dataDir ${dataDir})`)

let stopping = false
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    if (stopping) process.exit(1)
    stopping = true
    try {
      await server.stop()
    } finally {
      process.exit(0)
    }
  })
}
