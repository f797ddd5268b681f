// Basics: the process, its command line and the routes every deployment
// relies on (health checks, errors for unknown routes, the data directory
// lock, graceful shutdown).
import assert from "node:assert/strict"
import { test } from "node:test"

import { request } from "./lib/http.mjs"
import { runParley, startServer } from "./lib/server.mjs"

test("basics - healthz answers 200", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const res = await request(srv.url, "/healthz")
  assert.equal(res.status, 200, `GET /healthz: ${res.status} ${res.text}`)
  assert.match(res.headers["content-type"] ?? "", /^application\/json/)
  assert.equal(res.json().status, "ok")
})

test("basics - --help and --version print and exit 0", { timeout: 30_000 }, async () => {
  const help = await runParley(["--help"])
  assert.equal(help.code, 0, `--help exit code; stderr: ${help.stderr}`)
  assert.match(help.stdout, /usage: parley serve/)
  for (const flag of ["--listen", "--data", "--long-poll-timeout", "--sse-recycle", "--max-append-bytes"])
    assert.ok(help.stdout.includes(flag), `--help does not mention ${flag}:\n${help.stdout}`)

  const version = await runParley(["--version"])
  assert.equal(version.code, 0, `--version exit code; stderr: ${version.stderr}`)
  const m = /^parley (\d+\.\d+\.\d+)\s*$/.exec(version.stdout)
  assert.ok(m, `--version prints "parley X.Y.Z", got: ${JSON.stringify(version.stdout)}`)
})

test("basics - unknown route is a JSON 404", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  for (const [method, path] of [
    ["GET", "/no/such/route"],
    ["POST", "/v1/nothing-here"],
    ["GET", "/v1"],
  ]) {
    const res = await request(srv.url, path, { method })
    assert.equal(res.status, 404, `${method} ${path}: ${res.status} ${res.text}`)
    assert.match(res.headers["content-type"] ?? "", /^application\/json/, `${method} ${path} content type`)
    const body = res.json()
    assert.equal(typeof body.error, "object", `${method} ${path}: no error object in ${res.text}`)
    assert.match(body.error.code, /^[a-z][a-z0-9_]*$/, `${method} ${path}: error.code is snake_case`)
    assert.equal(typeof body.error.message, "string")
    assert.ok(body.error.message.length > 0)
  }
  // The server keeps serving after the 404s.
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})

test("basics - second instance on the same data directory is refused", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const second = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", srv.dataDir], {
    timeoutMs: 10_000,
  })
  assert.equal(second.timedOut, false, `the second instance kept running; stdout: ${second.stdout}`)
  assert.notEqual(second.code, 0, `second instance exit code; stderr: ${second.stderr}`)
  assert.match(second.stderr, /in use/i, `stderr should say the data directory is in use: ${second.stderr}`)
  assert.ok(second.stderr.includes(srv.dataDir), `stderr should name the directory: ${second.stderr}`)
  // The first instance is untouched.
  assert.ok(srv.running, "the first instance is still running")
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})

test("basics - SIGTERM exits 0", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  assert.equal((await request(srv.url, "/healthz")).status, 200)
  const code = await srv.stop()
  assert.equal(code, 0, `exit code after SIGTERM; stderr: ${srv.stderr()}`)
  // The lock is released: a new instance starts on the same directory.
  await srv.restart()
  assert.equal((await request(srv.url, "/healthz")).status, 200)
  assert.equal(await srv.stop(), 0)
})
