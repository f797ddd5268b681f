// GET /v1/documents/{collection}?limit=20 over 20 documents of 1.5 MB
// each, full against ?view=summary: bytes and wall time of each list,
// 10 rounds each on one keep-alive connection. A comparison in one run,
// never a timed test.
//
//   PARLEY_BIN=build/parley node bench/light-list.mjs
import http from "node:http"

import { client, userToken } from "../tests/blackbox/lib/api.mjs"
import { startServer } from "../tests/blackbox/lib/server.mjs"

const SECRET = "bench-secret"
const srv = await startServer({ args: ["--admin-key", "bench-admin", "--jwt-secret", SECRET] })
try {
  const alice = client(srv, userToken("alice", SECRET))
  const big = "w".repeat(1_500_000)
  for (let i = 0; i < 20; i++) await alice.put(`/v1/documents/workbench/s${i}`, { i, blob: big })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  for (const q of ["", "&view=summary", "&fields=version,updated_at"]) {
    let bytes = 0
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < 10; i++) bytes = (await alice.get(`/v1/documents/workbench?limit=20${q}`, { agent })).body.length
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / 10
    console.log(`list${q || " (full)"}: ${bytes} bytes, ${ms.toFixed(1)} ms each`)
  }
  agent.destroy()
} finally {
  await srv.stop()
}
