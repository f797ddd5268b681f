// 1,000 polls of GET /v1/conversations/{id}/sessions/latest and of
// GET /v1/sessions/{id}, unconditional against If-None-Match with the
// current ETag (304), on one keep-alive connection, sequentially; a session
// whose await request is small and one whose request is 256 KiB. Prints
// the wall time of each run and the bytes received. A comparison of the
// two in one run, never a timed test.
//
//   PARLEY_BIN=build/parley node bench/etag-poll.mjs
import http from "node:http"

import { client, userToken } from "../tests/blackbox/lib/api.mjs"
import { startServer } from "../tests/blackbox/lib/server.mjs"

const N = 1000
const ADMIN = "bench-admin"
const SECRET = "bench-secret"
const srv = await startServer({ args: ["--admin-key", ADMIN, "--jwt-secret", SECRET, "--rate-limit-reads", "off", "--rate-limit-writes", "off"] })
try {
  const alice = client(srv, userToken("alice", SECRET))
  const worker = client(srv, ADMIN)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  for (const size of [64, 256 * 1024]) {
    const conv = (await alice.post("/v1/conversations", { title: "poll" })).json()
    const sid = (await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "hi", process: true })).json().session_id
    await worker.post("/v1/sessions/claim", { conversation_id: conv.id })
    await worker.post(`/v1/sessions/${sid}/await`, { request: { text: "x".repeat(size) } })
    for (const path of [`/v1/conversations/${conv.id}/sessions/latest`, `/v1/sessions/${sid}`]) {
      const tag = (await alice.get(path)).headers.etag
      for (const conditional of [false, true]) {
        const headers = conditional ? { "If-None-Match": tag } : {}
        let bytes = 0
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < N; i++) {
          const res = await alice.get(path, { headers, agent })
          if (res.status !== (conditional ? 304 : 200)) throw new Error(`status ${res.status}`)
          bytes += res.body.length
        }
        const ms = Number(process.hrtime.bigint() - t0) / 1e6
        console.log(`${path.includes("latest") ? "sessions/latest" : "sessions/{id}  "} request ${String(size).padStart(6)} B  ${conditional ? "If-None-Match (304)" : "unconditional (200)"}: ${N} polls in ${ms.toFixed(0)} ms (${((ms * 1000) / N).toFixed(0)} µs each), ${bytes} body bytes`)
      }
    }
  }
  agent.destroy()
} finally {
  await srv.stop()
  srv.cleanup?.()
}
