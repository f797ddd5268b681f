// Black-box: the PostgreSQL backend under database trouble. Runs only
// against a private PostgreSQL server (tests/lib/with-pg sets
// PARLEY_TEST_STORE and PARLEY_TEST_PG_DIR); skipped otherwise.
//
// What it guarantees: while PostgreSQL is stopped, a write or a read is
// answered 503 database_unavailable with a JSON error (never a 2xx, never a
// crash); the server reconnects by
// itself once PostgreSQL is back, with no restart; and every write that was
// acknowledged before, during or after the outage is in the stream exactly
// once. /metrics keeps answering meanwhile, with parley_store_up 0.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import path from "node:path"
import { test } from "node:test"

import { append, createStream, readAll, request } from "./lib/http.mjs"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"

const PG_DIR = process.env.PARLEY_TEST_PG_DIR ?? ""
const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin"
const skip = TEST_PG_URL && PG_DIR ? false : "needs a private PostgreSQL (tests/lib/with-pg)"

/** pg_ctl on the private server, as the postgres system user when root. */
function pgCtl(...args) {
  const cmd = [path.join(PG_BIN, "pg_ctl"), "-D", path.join(PG_DIR, "data"), ...args]
  const res =
    process.getuid() === 0
      ? spawnSync("runuser", ["-u", "postgres", "--", ...cmd], { encoding: "utf8", timeout: 60_000 })
      : spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8", timeout: 60_000 })
  assert.equal(res.status, 0, `pg_ctl ${args.join(" ")}: ${res.stderr}`)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

test("postgres - stopped and started under load: 503 while down, reconnects, no acknowledged write lost", { skip, timeout: 120_000 }, async (t) => {
  const srv = await startServer({ t })
  assert.equal((await createStream(srv.url, "load")).status, 201)
  const acked = new Set()
  const refused = [] // non-2xx answers: { status, body }
  let stop = false
  let seq = 0
  const writer = async (w) => {
    while (!stop) {
      const body = `w${w}-${++seq}\n`
      let res
      try {
        res = await append(srv.url, "load", body, "text/plain", { timeoutMs: 20_000 })
      } catch (err) {
        refused.push({ status: 0, body: String(err) })
        continue
      }
      if (res.status === 204) acked.add(body)
      else {
        refused.push({ status: res.status, body: res.text })
        await sleep(20)
      }
    }
  }
  const writers = [0, 1, 2, 3].map(writer)
  await sleep(800)
  const before = acked.size
  pgCtl("-m", "fast", "-w", "stop")
  await sleep(1500)
  const downRefused = refused.length
  // A read while the database is down gets the same answer as a write.
  const readDown = await readAll(srv.url, "load")
  // /metrics still answers, and says the store cannot be read.
  const metricsDown = await request(srv.url, "/metrics")
  pgCtl("-l", path.join(PG_DIR, "server.log"), "-w", "-t", "60", "start")
  const restarted = acked.size
  await sleep(1500)
  stop = true
  await Promise.all(writers)

  assert.ok(before > 0, "writes were acknowledged before the outage")
  assert.ok(downRefused > 0, "writes were refused while PostgreSQL was down")
  assert.ok(acked.size > restarted, "writes are acknowledged again after the restart, without restarting parley")
  assert.ok(srv.running, `parley is still running: ${srv.stderr()}`)
  for (const r of refused) {
    assert.equal(r.status, 503, `a write during the outage: ${r.status} ${r.body}`)
    const err = JSON.parse(r.body).error
    assert.ok(err && typeof err.code === "string" && typeof err.message === "string", r.body)
  }
  // The outage is named as such (not "shutting down", not a storage error).
  assert.ok(refused.some((r) => JSON.parse(r.body).error.code === "database_unavailable"), JSON.stringify(refused.slice(0, 3)))
  assert.equal(readDown.status, 503, `a read during the outage: ${readDown.status} ${readDown.text}`)
  assert.equal(JSON.parse(readDown.text).error.code, "database_unavailable")
  assert.equal(metricsDown.status, 200, metricsDown.text)
  assert.match(metricsDown.text, /^parley_store_up 0$/m)
  assert.doesNotMatch(metricsDown.text, /^parley_store_database_bytes /m)
  const metricsUp = await request(srv.url, "/metrics")
  assert.match(metricsUp.text, /^parley_store_up 1$/m)
  assert.match(metricsUp.text, /^parley_store_database_bytes \d+$/m)

  const all = await readAll(srv.url, "load")
  assert.equal(all.status, 200)
  const stored = all.text.split("\n").filter(Boolean)
  const counts = new Map()
  for (const line of stored) counts.set(`${line}\n`, (counts.get(`${line}\n`) ?? 0) + 1)
  for (const body of acked) assert.equal(counts.get(body), 1, `acknowledged ${JSON.stringify(body)} is stored once`)
  for (const [body, n] of counts) assert.equal(n, 1, `${JSON.stringify(body)} is stored once`)
})
