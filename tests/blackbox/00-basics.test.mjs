// Basics: the process, its command line and the routes every deployment
// relies on (health checks, errors for unknown routes, the data directory
// lock, graceful shutdown).
import assert from "node:assert/strict"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"

import { append, createStream, readAll, request } from "./lib/http.mjs"
import { TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

// On PostgreSQL (tests/lib/with-pg) the data directory holds no store.
const sqliteOnly = (why) => (TEST_PG_URL ? `SQLite only: ${why}` : false)

test("basics - healthz answers 200", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const res = await request(srv.url, "/healthz")
  assert.equal(res.status, 200, `GET /healthz: ${res.status} ${res.text}`)
  assert.match(res.headers["content-type"] ?? "", /^application\/json/)
  assert.equal(res.json().status, "ok")
})

test("basics - --help and --version print and exit 0", { timeout: 30_000 }, async () => {
  const overview = await runParley(["--help"])
  assert.equal(overview.code, 0, `--help exit code; stderr: ${overview.stderr}`)
  assert.match(overview.stdout, /usage: parley serve/)
  const help = await runParley(["serve", "--help"])
  assert.equal(help.code, 0, `serve --help exit code; stderr: ${help.stderr}`)
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

test("basics - second instance on the same data directory is refused", { timeout: 30_000, skip: sqliteOnly("the lock is the SQLite store's, and nodes on PostgreSQL share one database") }, async (t) => {
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

// The store URL (--store, PARLEY_STORE); --data DIR sets the default
// sqlite:DIR/parley.db.

test("basics - --data DIR keeps the default store DIR/parley.db", { timeout: 30_000, skip: sqliteOnly("the default store is an SQLite file") }, async (t) => {
  const srv = await startServer({ t })
  const file = path.join(srv.dataDir, "parley.db")
  assert.ok(srv.stdoutText.includes(`store sqlite ${file};`), `banner names the store: ${srv.stdoutText}`)
  assert.ok(fs.existsSync(file), "DIR/parley.db exists")
  assert.ok(fs.existsSync(path.join(srv.dataDir, "parley.lock")), "DIR/parley.lock exists")
})

test("basics - --store sqlite:PATH keeps data across a restart", { timeout: 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-blackbox-"))
  const file = path.join(dir, "elsewhere", "chat.sqlite")
  const srv = await startServer({ t, dataDir: dir, args: ["--store", `sqlite:${file}`] })
  assert.ok(srv.stdoutText.includes(`store sqlite ${file};`), `banner names the store: ${srv.stdoutText}`)
  assert.equal((await createStream(srv.url, "store-url/a")).status, 201)
  const put = await append(srv.url, "store-url/a", "kept")
  assert.ok(put.status >= 200 && put.status < 300, `append: ${put.status} ${put.text}`)

  assert.equal(await srv.stop(), 0, `exit code after SIGTERM; stderr: ${srv.stderr()}`)
  await srv.restart()
  const got = await readAll(srv.url, "store-url/a")
  assert.equal(got.status, 200, `read after restart: ${got.status} ${got.text}`)
  assert.equal(got.text, "kept")

  assert.ok(fs.existsSync(file), "the database is the file the URL names")
  assert.ok(fs.existsSync(`${file}.lock`), "its lock file sits beside it")
  assert.ok(!fs.existsSync(path.join(dir, "parley.db")), "--store wins over --data")
})

test("basics - PARLEY_STORE names the store; --store wins over it", { timeout: 30_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-blackbox-"))
  const file = path.join(dir, "from-env.db")
  const srv = await startServer({ t, dataDir: dir, env: { PARLEY_STORE: `sqlite:${file}` } })
  assert.ok(srv.stdoutText.includes(`store sqlite ${file};`), `banner: ${srv.stdoutText}`)
  assert.ok(fs.existsSync(path.join(dir, "from-env.lock")), "x.db locks x.lock")
  await srv.stop()

  const flag = path.join(dir, "from-flag.db")
  const srv2 = await startServer({
    t,
    dataDir: dir,
    env: { PARLEY_STORE: "postgres://ignored" },
    args: ["--store", `sqlite:${flag}`],
  })
  assert.ok(srv2.stdoutText.includes(`store sqlite ${flag};`), `banner: ${srv2.stdoutText}`)
})

test("basics - a store URL this build cannot open exits 2 with a message", { timeout: 60_000 }, async () => {
  const cases = [
    ["postgres://", /needs a database/],
    ["mysql://db.invalid/parley", /unknown store URL scheme/],
    ["./data/parley.db", /unknown store URL scheme/],
    ["sqlite:", /needs the database file's path/],
    ["", /empty store URL/],
  ]
  for (const [url, why] of cases) {
    const res = await runParley(["serve", "--listen", "127.0.0.1:0", "--store", url])
    assert.equal(res.timedOut, false, `--store '${url}' kept running; stdout: ${res.stdout}`)
    assert.equal(res.code, 2, `--store '${url}' exit code; stderr: ${res.stderr}`)
    assert.match(res.stderr, why, `--store '${url}' message`)
    assert.match(res.stderr, /--store/, `--store '${url}': the message names the option`)
    assert.ok(!res.stderr.includes("pw-secret"), `the password is not printed: ${res.stderr}`)
    assert.equal(res.stdout, "", `--store '${url}': no banner`)
  }
  const env = await runParley(["serve", "--listen", "127.0.0.1:0"], { env: { PARLEY_STORE: "mysql://x/y" } })
  assert.equal(env.code, 2, `PARLEY_STORE=mysql://...: exit code; stderr: ${env.stderr}`)
  assert.match(env.stderr, /unknown store URL scheme/)
})

test("basics - a PostgreSQL store that cannot be reached stops start-up; the password is masked", { timeout: 60_000 }, async () => {
  for (const url of [
    "postgres://parley:pw-secret@db.invalid/parley?connect_timeout=2",
    "postgresql://db.invalid/parley?password=pw-secret&connect_timeout=2",
  ]) {
    const res = await runParley(["serve", "--listen", "127.0.0.1:0", "--store", url])
    assert.equal(res.timedOut, false, `--store '${url}' kept running; stdout: ${res.stdout}`)
    assert.equal(res.code, 1, `--store '${url}' exit code; stderr: ${res.stderr}`)
    assert.match(res.stderr, /cannot open the store postgres(ql)?:\/\/.*the database is unavailable/)
    assert.ok(!res.stderr.includes("pw-secret"), `the password is not printed: ${res.stderr}`)
    assert.equal(res.stdout, "", `--store '${url}': no banner`)
  }
})
