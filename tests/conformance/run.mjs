// Runs the official Durable Streams conformance suite against a fresh
// Parley server: starts the binary on a free loopback port with its own
// temporary data directory, runs the suite, stops the server (SIGTERM,
// which must exit 0) and removes the directory.
//
// The long-poll timeout is set to 2 s: the suite expects an idle long-poll
// to answer 204 well inside its 5 s per-test budget. The server runs in
// local mode, which refuses cross-origin pages; one test sends a CORS
// preflight from https://example.com, so that origin is allowed by name
// (--allow-origin). Everything else runs with the defaults.
//
// With PARLEY_TEST_STORE set to a postgres:// URL (tests/lib/with-pg sets
// it), the server stores everything there (--store) instead of in SQLite.
// With PARLEY_CONFORMANCE_NODES=N as well (N > 1), N nodes run on that one
// database behind tests/lib/rr-proxy.mjs, which sends each request to the
// next node in turn, so consecutive requests of a test (a create and its
// append, an append and the long-poll or SSE reader it must wake) land on
// different nodes; the suite talks to the proxy, and the requests each
// node got are printed at the end.
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

import { startProxy } from "../lib/rr-proxy.mjs"

const here = dirname(fileURLToPath(import.meta.url))
const bin = process.env.PARLEY_BIN || resolve(here, "../../build/parley")
const pgStore = /^postgres(ql)?:\/\//.test(process.env.PARLEY_TEST_STORE ?? "") ? process.env.PARLEY_TEST_STORE : ""
const nodes = Number(process.env.PARLEY_CONFORMANCE_NODES ?? "1")
if (!(nodes >= 1) || (nodes > 1 && !pgStore)) {
  console.error("conformance: PARLEY_CONFORMANCE_NODES above 1 needs PARLEY_TEST_STORE, a postgres:// URL")
  process.exit(2)
}

const servers = []
const dataDirs = []
const cleanup = () => {
  for (const s of servers) try { s.kill("SIGKILL") } catch {}
  for (const d of dataDirs) rmSync(d, { recursive: true, force: true })
}
process.on("exit", cleanup)

/** Start one node; resolves its URL. */
function startNode() {
  const dataDir = mkdtempSync(join(tmpdir(), "parley-conformance-"))
  dataDirs.push(dataDir)
  const server = spawn(
    bin,
    [
      "serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--long-poll-timeout", "2000",
      "--allow-origin", "https://example.com",
      ...(pgStore ? ["--store", pgStore] : []),
    ],
    { stdio: ["ignore", "pipe", "inherit"] }
  )
  servers.push(server)
  return new Promise((ok, fail) => {
    let out = ""
    const timer = setTimeout(() => fail(new Error("server did not start in 10 s")), 10000)
    server.stdout.on("data", (d) => {
      out += d
      const m = out.match(/listening on (http:\/\/[0-9.]+:\d+)/)
      if (m) { clearTimeout(timer); ok(m[1]) }
    })
    server.on("exit", (code) => { clearTimeout(timer); fail(new Error(`server exited with ${code}`)) })
  })
}

const urls = []
for (let i = 0; i < nodes; i++) urls.push(await startNode())
// PARLEY_CONFORMANCE_PROXY_MODE=connection balances connections instead (to compare).
const proxy = nodes > 1 ? await startProxy(urls, { mode: process.env.PARLEY_CONFORMANCE_PROXY_MODE ?? "request" }) : null
const url = proxy ? proxy.url : urls[0]

// A test's time limit is a guard against a hang, not a speed check: 30 s
// (vitest's default, 5 s, is met by the slowest case with little room on a
// loaded machine, where make test runs this suite beside another).
const vitest = spawn(
  join(here, "node_modules/.bin/vitest"),
  ["run", "conformance.test.mjs", "--no-color", "--testTimeout=30000"],
  { cwd: here, stdio: "inherit", env: { ...process.env, CONFORMANCE_TEST_URL: url, NO_COLOR: "1" } }
)
const code = await new Promise((ok) => vitest.on("exit", (c) => ok(c ?? 1)))

if (proxy) {
  const st = proxy.stats()
  console.log(
    `conformance: ${nodes} nodes behind a round-robin proxy balancing each ${st.mode}: requests per node ` +
      `${st.requests.join(", ")} over ${st.clients} client connections (the proxy's to each node: ` +
      `${st.connections.join(", ")}); ` +
      `${st.switches} of ${st.requests.reduce((a, b) => a + b, 0) - 1} consecutive requests went to another node`
  )
  await proxy.close()
}
let failed = false
for (const server of servers) {
  server.removeAllListeners("exit")
  const stopped = new Promise((ok) => {
    if (server.exitCode !== null || server.signalCode !== null) ok(server.exitCode ?? server.signalCode)
    else server.on("exit", (c, sig) => ok(c ?? sig))
  })
  server.kill("SIGTERM")
  const exitCode = await stopped
  if (exitCode !== 0) {
    console.error(`conformance: server exited with ${exitCode} after SIGTERM (expected 0)`)
    failed = true
  }
}
process.exit(failed ? 1 : code)
