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
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const bin = process.env.PARLEY_BIN || resolve(here, "../../build/parley")
const dataDir = mkdtempSync(join(tmpdir(), "parley-conformance-"))

const server = spawn(
  bin,
  [
    "serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--long-poll-timeout", "2000",
    "--allow-origin", "https://example.com",
    ...(/^postgres(ql)?:\/\//.test(process.env.PARLEY_TEST_STORE ?? "")
      ? ["--store", process.env.PARLEY_TEST_STORE]
      : []),
  ],
  { stdio: ["ignore", "pipe", "inherit"] }
)
const cleanup = () => {
  try { server.kill("SIGKILL") } catch {}
  rmSync(dataDir, { recursive: true, force: true })
}
process.on("exit", cleanup)

const url = await new Promise((ok, fail) => {
  let out = ""
  const timer = setTimeout(() => fail(new Error("server did not start in 10 s")), 10000)
  server.stdout.on("data", (d) => {
    out += d
    const m = out.match(/listening on (http:\/\/[0-9.]+:\d+)/)
    if (m) { clearTimeout(timer); ok(m[1]) }
  })
  server.on("exit", (code) => { clearTimeout(timer); fail(new Error(`server exited with ${code}`)) })
})

const vitest = spawn(
  join(here, "node_modules/.bin/vitest"),
  ["run", "conformance.test.mjs", "--no-color"],
  { cwd: here, stdio: "inherit", env: { ...process.env, CONFORMANCE_TEST_URL: url, NO_COLOR: "1" } }
)
const code = await new Promise((ok) => vitest.on("exit", (c) => ok(c ?? 1)))

server.removeAllListeners("exit")
const stopped = new Promise((ok) => server.on("exit", (c, sig) => ok(c ?? sig)))
server.kill("SIGTERM")
const exitCode = await stopped
if (exitCode !== 0) {
  console.error(`conformance: server exited with ${exitCode} after SIGTERM (expected 0)`)
  process.exit(1)
}
process.exit(code)
