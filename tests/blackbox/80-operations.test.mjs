// Operating Parley: GET /metrics (Prometheus text, checked by promtool,
// with counters that move, the commit and fsync histograms among them,
// and the auth rules), the access log and JSON
// logs, and --public-url (the origin that URLs are built on behind a
// proxy, whatever the Host header says).
//
// promtool comes from Debian's prometheus package (scripts/setup installs
// it); without it the metrics test fails rather than skips.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import http from "node:http"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"

import { client, expectError, expectStatus, openSse, sleep, userToken } from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import { runParley, startServer, TEST_PG_URL } from "./lib/server.mjs"

delete process.env.PARLEY_ADMIN_KEY
delete process.env.PARLEY_JWT_SECRET
delete process.env.PARLEY_METRICS_TOKEN
delete process.env.PARLEY_ACCESS_LOG
delete process.env.PARLEY_LOG_FORMAT
delete process.env.PARLEY_PUBLIC_URL

const ADMIN_KEY = "test-admin-key-5d1e77c0"
const SECRET = "test-jwt-secret-0b9f3a42"
const METRICS_TOKEN = "test-metrics-token-9a4c11e3"

/** Run promtool check metrics on text; fails the test if promtool is missing or unhappy. */
function promtoolCheck(text) {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
  if (r.error) assert.fail(`promtool cannot run (${r.error.code}): install Debian's prometheus package (scripts/setup)`)
  assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}\n${text}`)
  assert.equal(`${r.stdout}${r.stderr}`.trim(), "", `promtool check metrics has remarks:\n${r.stdout}${r.stderr}`)
}

/**
 * Parse the Prometheus text format: { samples: Map("name{labels}" → number),
 * types: Map(family → type) }. Labels are kept in the order written.
 */
function parseMetrics(text) {
  const samples = new Map()
  const types = new Map()
  for (const line of text.split("\n")) {
    if (!line) continue
    const t = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (t) types.set(t[1], t[2])
    if (line.startsWith("#")) continue
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line)
    assert.ok(m, `a sample line: ${line}`)
    samples.set(m[1], Number(m[2]))
  }
  return { samples, types }
}

/** The value of one sample (undefined when absent). */
const value = (m, key) => m.samples.get(key)

async function scrape(c) {
  const res = await c.get("/metrics")
  assert.equal(res.status, 200, `GET /metrics: ${res.status} ${res.text}`)
  assert.equal(res.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
  promtoolCheck(res.text)
  return parseMetrics(res.text)
}

async function until(what, fn, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await fn()) return
    await sleep(25)
  }
  assert.fail(`timed out waiting for ${what}`)
}

test("operations - /metrics is valid Prometheus text and its counters move", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv, null)
  const m0 = await scrape(c)

  // Families every scrape has, with their types.
  const expected = {
    parley_build_info: "gauge",
    process_start_time_seconds: "gauge",
    parley_http_requests_total: "counter",
    parley_http_request_duration_seconds: "histogram",
    parley_http_connections: "gauge",
    parley_idempotency_replays_total: "counter",
    parley_writer_batch_size: "histogram",
    parley_writer_commit_seconds: "histogram",
    parley_writer_transaction_seconds: "histogram",
    parley_fsync_seconds: "histogram",
    parley_writer_queue_depth: "gauge",
    parley_live_subscribers: "gauge",
    parley_store_up: "gauge",
    parley_store_database_bytes: "gauge",
  }
  for (const [name, type] of Object.entries(expected)) assert.equal(m0.types.get(name), type, `family ${name}`)
  const store = TEST_PG_URL ? "postgres" : "sqlite"
  assert.equal(value(m0, `parley_build_info{version="0.1.0",store="${store}"}`), 1)
  const started = value(m0, "process_start_time_seconds")
  assert.ok(started > Date.now() / 1000 - 120 && started <= Date.now() / 1000 + 1, `start time ${started}`)
  assert.equal(value(m0, "parley_store_up"), 1)
  assert.ok(value(m0, "parley_store_database_bytes") > 0, "database size")
  if (!TEST_PG_URL) assert.ok(value(m0, "parley_store_wal_bytes") >= 0, "SQLite's WAL size")
  assert.ok(value(m0, "parley_http_connections") >= 1, "the scrape's own connection is open")
  assert.equal(value(m0, "parley_writer_queue_depth"), 0)
  assert.equal(value(m0, "parley_idempotency_replays_total"), 0)
  for (const kind of ["long_poll", "sse", "webhook", "pull_wake"])
    assert.equal(value(m0, `parley_live_subscribers{kind="${kind}"}`), 0, kind)
  // The WAL's sync, timed alone (SQLite: around the VFS's sync; PostgreSQL:
  // the COMMIT round trip), and the database file's (SQLite checkpoints).
  const fsyncs0 = value(m0, 'parley_fsync_seconds_count{file="wal"}')
  assert.ok(fsyncs0 !== undefined && value(m0, 'parley_fsync_seconds_count{file="database"}') !== undefined, "parley_fsync_seconds has the wal and database series")
  assert.equal(value(m0, 'parley_fsync_seconds_bucket{file="wal",le="+Inf"}'), fsyncs0)
  const commits0 = value(m0, "parley_writer_commit_seconds_count")
  const batches0 = value(m0, "parley_writer_batch_size_count")

  // Writes, one of them replayed by its Idempotency-Key.
  for (let i = 0; i < 2; i++) {
    const res = await c.post("/v1/documents/settings", { theme: "dark" }, { headers: { "Idempotency-Key": "k-1" } })
    expectStatus(res, 201)
    assert.equal(res.headers["idempotent-replayed"], i ? "true" : undefined)
  }
  for (const id of ["a", "b", "c"]) expectStatus(await c.put(`/v1/documents/settings/${id}`, { n: 1 }), 201)
  expectError(await c.get("/v1/documents/settings/nope"), 404, "not_found")
  expectError(await c.get("/no/such/route"), 404, "not_found")

  // A request is counted when it ends on the server, just after its
  // client has the answer: wait until the last one is in.
  const docs = 'route="/v1/documents/{collection}"'
  const doc = 'route="/v1/documents/{collection}/{id}"'
  let m1
  await until("the requests counted", async () => {
    m1 = await scrape(c)
    return value(m1, 'parley_http_requests_total{route="other",method="GET",status="4xx"}') === 1
  })
  assert.equal(value(m1, "parley_idempotency_replays_total"), 1, "one replay")
  assert.equal(value(m1, `parley_http_requests_total{${docs},method="POST",status="2xx"}`), 2)
  assert.equal(value(m1, `parley_http_requests_total{${doc},method="PUT",status="2xx"}`), 3, "three ids, one route label")
  assert.equal(value(m1, `parley_http_requests_total{${doc},method="GET",status="4xx"}`), 1)
  assert.equal(value(m1, 'parley_http_requests_total{route="other",method="GET",status="4xx"}'), 1)
  assert.ok(value(m1, 'parley_http_requests_total{route="/metrics",method="GET",status="2xx"}') >= 1, "the first scrape")
  assert.equal(value(m1, `parley_http_request_duration_seconds_count{${doc},method="PUT"}`), 3)
  assert.equal(value(m1, `parley_http_request_duration_seconds_bucket{${doc},method="PUT",le="+Inf"}`), 3)
  for (const key of m1.samples.keys()) assert.ok(!key.includes("settings/a"), `no path in a label: ${key}`)
  assert.ok(value(m1, "parley_writer_commit_seconds_count") >= commits0 + 4, "four writes committed (the replay is not)")
  assert.ok(value(m1, "parley_writer_batch_size_count") >= batches0 + 1)
  assert.ok(value(m1, "parley_writer_batch_size_sum") >= 4)
  assert.ok(value(m1, "parley_writer_transaction_seconds_sum") > 0)
  const batches = value(m1, "parley_writer_batch_size_count") - batches0
  assert.ok(value(m1, 'parley_fsync_seconds_count{file="wal"}') >= fsyncs0 + batches, `a WAL sync per committed batch (${batches} batches)`)
  assert.ok(value(m1, 'parley_fsync_seconds_sum{file="wal"}') > value(m0, 'parley_fsync_seconds_sum{file="wal"}'), "the sync time moves")

  // Live readers: an SSE reader and a long-poll are counted while they last.
  expectStatus(await c.put("/v1/stream/live", undefined, { headers: { "Content-Type": "application/json" } }), 201)
  const sse = openSse(srv.port, "/v1/stream/live?offset=-1&live=sse")
  t.after(() => sse.close())
  await sse.waitFor((s) => s.events.some((e) => e.type === "control"), 5000, "the SSE reader's first control event")
  const poll = request(srv.url, "/v1/stream/live?offset=now&live=long-poll", { timeoutMs: 30_000 })
  await until("an SSE reader and a long-poll counted", async () => {
    const m = await scrape(c)
    return value(m, 'parley_live_subscribers{kind="sse"}') === 1 && value(m, 'parley_live_subscribers{kind="long_poll"}') === 1
  })
  expectStatus(await c.post("/v1/stream/live", { hello: 1 }), 204)
  assert.equal((await poll).status, 200, "the long-poll wakes with the append")
  sse.close()
  await until("both live readers counted out", async () => {
    const m = await scrape(c)
    return value(m, 'parley_live_subscribers{kind="sse"}') === 0 && value(m, 'parley_live_subscribers{kind="long_poll"}') === 0
  })
  const m2 = await scrape(c)
  assert.equal(value(m2, 'parley_http_requests_total{route="/v1/stream/{path}",method="GET",status="2xx"}'), 1, "the long-poll")
  assert.equal(
    value(m2, 'parley_http_request_duration_seconds_count{route="/v1/stream/{path}",method="GET"}'),
    undefined,
    "live reads are not in the latency histogram",
  )

  // A pull-wake subscription is a subscriber too.
  expectStatus(await c.put("/v1/stream/wake/pool", undefined, { headers: { "Content-Type": "application/json" } }), 201)
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/jobs", { type: "pull-wake", pattern: "jobs/*", wake_stream: "wake/pool" }), 201)
  assert.equal(value(await scrape(c), 'parley_live_subscribers{kind="pull_wake"}'), 1)

  // HEAD and a wrong method.
  const head = await c.head("/metrics")
  assert.equal(head.status, 200)
  assert.equal(head.body.length, 0)
  expectError(await c.post("/metrics", {}), 405, "method_not_allowed")
})

test("operations - /metrics takes the admin key or the metrics token when auth is on", { timeout: 60_000 }, async (t) => {
  for (const how of ["flag", "variable"]) {
    const srv = await startServer({
      t,
      args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET, ...(how === "flag" ? ["--metrics-token", METRICS_TOKEN] : [])],
      env: how === "variable" ? { PARLEY_METRICS_TOKEN: METRICS_TOKEN } : undefined,
    })
    for (const [who, token] of [["no token", null], ["a user's JWT", userToken("alice", SECRET)], ["a wrong token", "nope"], ["a prefix of the token", METRICS_TOKEN.slice(0, -1)]]) {
      const res = await client(srv, token).get("/metrics")
      expectError(res, 401, "unauthorized", `${how}: ${who}`)
      assert.equal(res.headers["www-authenticate"], "Bearer")
      assert.ok(!res.text.includes("parley_"), `${who}: no metrics in the refusal`)
    }
    await scrape(client(srv, ADMIN_KEY))
    await until("the refusals counted", async () => {
      const m = await scrape(client(srv, METRICS_TOKEN))
      return value(m, 'parley_http_requests_total{route="/metrics",method="GET",status="4xx"}') === 4
    })
    // The metrics token reads /metrics and nothing else.
    expectError(await client(srv, METRICS_TOKEN).get("/v1/events?offset=-1"), 401, "unauthorized", `${how}: the metrics token on the API`)
  }
  // Without a metrics token, only the admin key.
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY] })
  expectError(await client(srv, METRICS_TOKEN).get("/metrics"), 401, "unauthorized")
  await scrape(client(srv, ADMIN_KEY))
})

/** The access-log lines of a text-format server's stderr, as objects. */
function accessLines(stderr) {
  const out = []
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("parley: access: ")) continue
    const fields = {}
    for (const m of line.slice(16).matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))/g)) fields[m[1]] = m[2] ?? m[3]
    out.push({ line, ...fields })
  }
  return out
}

test("operations - the access log: one line per request, without secrets", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET, "--access-log"] })
  const alice = userToken("alice", SECRET)
  const a = client(srv, alice)
  expectStatus(await a.put("/v1/documents/notes/n1", { text: "hi" }, { headers: { "X-Request-Id": "req-42" } }), 201)
  expectStatus(await a.get("/v1/documents/notes/n1?secret=query-value-77"), 200)
  expectError(await client(srv, "wrong-token-31").get("/v1/events?offset=-1"), 401, "unauthorized")
  expectStatus(await client(srv, ADMIN_KEY).get("/healthz"), 200)
  const bad = await request(srv.url, "/v1/stream/a%C3%28b") // not UTF-8: refused at the edge
  assert.equal(bad.status, 400)
  expectStatus(await client(srv, ADMIN_KEY).get("/metrics"), 200)
  await until("six access lines", () => accessLines(srv.stderr()).length >= 6)
  const lines = accessLines(srv.stderr())
  assert.equal(lines.length, 6, srv.stderr())

  // A line is written when its request ends on the server, which may be
  // after the client has sent the next one: find each by what it is.
  const find = (what, pred) => {
    const found = lines.filter(pred)
    assert.equal(found.length, 1, `one line for ${what}: ${srv.stderr()}`)
    return found[0]
  }
  const put = find("the PUT", (l) => l.method === "PUT")
  const get = find("the GET", (l) => l.method === "GET" && l.route === "/v1/documents/{collection}/{id}")
  const refused = find("the 401", (l) => l.status === "401")
  const health = find("/healthz", (l) => l.route === "/healthz")
  const edge = find("the 400", (l) => l.status === "400")
  const scraped = find("/metrics", (l) => l.route === "/metrics")
  assert.match(put.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
  assert.equal(put.remote, "127.0.0.1")
  assert.equal(put.method, "PUT")
  assert.equal(put.path, "/v1/documents/notes/n1")
  assert.equal(put.route, "/v1/documents/{collection}/{id}")
  assert.equal(put.status, "201")
  assert.ok(Number(put.bytes) > 0, put.line)
  assert.ok(Number(put.duration_ms) >= 0, put.line)
  assert.equal(put.user, "alice")
  assert.equal(put.request_id, "req-42")
  assert.equal(get.path, "/v1/documents/notes/n1", "the path, never the query")
  assert.equal(get.status, "200")
  assert.equal(refused.status, "401")
  assert.equal(refused.user, undefined, "no user for a refused token")
  assert.equal(health.path, "/healthz")
  assert.equal(edge.status, "400")
  assert.equal(edge.path, "/v1/stream/a\\xc3(b", "bytes that are not UTF-8 are written as \\xNN")
  assert.equal(scraped.route, "/metrics")
  assert.equal(scraped.user, "@admin")
  for (const secret of [ADMIN_KEY, alice, "wrong-token-31", "query-value-77", SECRET])
    assert.ok(!srv.stderr().includes(secret), `a secret in the log: ${secret}`)

  // Off by default.
  const quiet = await startServer({ t })
  expectStatus(await client(quiet, null).get("/healthz"), 200)
  await sleep(100)
  assert.equal(accessLines(quiet.stderr()).length, 0, quiet.stderr())
})

test("operations - --log-format json: every log line is one JSON object", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, env: { PARLEY_LOG_FORMAT: "json", PARLEY_ACCESS_LOG: "1" } })
  const c = client(srv, null)
  expectStatus(await c.put("/v1/documents/notes/n1", { text: "hi" }, { headers: { "X-Request-Id": "json-1" } }), 201)
  assert.equal((await request(srv.url, "/v1/stream/a%C3%28%22b")).status, 400)
  assert.equal(await srv.stop(), 0)

  const banner = srv.stdoutText.trim().split("\n")
  assert.equal(banner.length, 1)
  const start = JSON.parse(banner[0])
  assert.match(start.msg, /^parley \S+ listening on http:\/\/127\.0\.0\.1:\d+ /)
  assert.equal(start.level, "info")

  const lines = srv.stderr().split("\n").filter((l) => l.length)
  assert.ok(lines.length >= 3, srv.stderr())
  const objs = lines.map((l) => {
    try {
      return JSON.parse(l)
    } catch {
      assert.fail(`a log line is not JSON: ${l}`)
    }
  })
  for (const o of objs) {
    assert.match(o.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    assert.match(o.level, /^(info|warning|error)$/)
    assert.equal(typeof o.msg, "string")
  }
  const requests = objs.filter((o) => o.msg === "request").sort((a, b) => (a.method === "PUT" ? -1 : b.method === "PUT" ? 1 : 0))
  assert.equal(requests.length, 2, srv.stderr())
  assert.deepEqual(
    { ...requests[0], time: undefined, duration_ms: undefined },
    { time: undefined, level: "info", msg: "request", method: "PUT", path: "/v1/documents/notes/n1", route: "/v1/documents/{collection}/{id}", status: 201, bytes: requests[0].bytes, duration_ms: undefined, remote: "127.0.0.1", user: "@local", request_id: "json-1" },
  )
  assert.equal(typeof requests[0].duration_ms, "number")
  assert.equal(requests[1].path, '/v1/stream/a\\xc3("b', "escaped, and still valid JSON")
  assert.ok(objs.some((o) => /received SIGTERM/.test(o.msg)), "the shutdown line is JSON too")

  const bad = await runParley(["serve", "--log-format", "xml"])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /invalid value 'xml' for --log-format/)
})

test("operations - parley_last_backup_timestamp_seconds: 0 before a backup, then the newest backup's time (scheduled or parley backup)", { timeout: 60_000 }, async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-ops-metrics-"))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-ops-backups-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const store = { PARLEY_STORE: `sqlite:${dataDir}/parley.db` }
  // Without --backup-dir the family is absent.
  const plain = await startServer({ t, env: store })
  assert.equal(value(await scrape(client(plain, null)), "parley_last_backup_timestamp_seconds"), undefined)
  assert.equal(await plain.stop(), 0)

  const srv = await startServer({ t, dataDir, env: store, args: ["--backup-every", "1h", "--backup-dir", dir] })
  const c = client(srv, null)
  let m = await scrape(c)
  assert.equal(m.types.get("parley_last_backup_timestamp_seconds"), "gauge")
  assert.equal(value(m, "parley_last_backup_timestamp_seconds"), 0, "no backup yet")

  // A backup taken by another process into the same directory counts.
  const before = Date.now() / 1000
  const r = await runParley(["backup", "--data", dataDir, "--keep", "3", dir])
  assert.equal(r.code, 0, r.stderr)
  m = await scrape(c)
  const first = value(m, "parley_last_backup_timestamp_seconds")
  assert.ok(first >= before - 1 && first <= Date.now() / 1000 + 1, `a recent time: ${first} (before ${before})`)
  // A failed or unfinished copy (the temporary name) does not.
  fs.writeFileSync(path.join(dir, ".parley-backup-unfinished"), "x")
  fs.writeFileSync(path.join(dir, "parley-notastamp.db"), "x")
  await sleep(1100)
  const r2 = await runParley(["backup", "--data", dataDir, "--keep", "3", dir])
  assert.equal(r2.code, 0, r2.stderr)
  const second = value(await scrape(c), "parley_last_backup_timestamp_seconds")
  assert.ok(second > first, `the newest backup: ${second} > ${first}`)
  await sleep(1100)
  fs.writeFileSync(path.join(dir, ".parley-backup-late"), "x")
  assert.equal(value(await scrape(c), "parley_last_backup_timestamp_seconds"), second)
  assert.equal(await srv.stop(), 0)

  // The server's own scheduled backups move it too.
  const sched = await startServer({ t, dataDir, env: store, args: ["--backup-every", "1s", "--backup-dir", dir] })
  await until("a scheduled backup", async () => value(await scrape(client(sched, null)), "parley_last_backup_timestamp_seconds") > second, 15_000)
})

/** A webhook receiver on loopback that answers {"done":true}; hits: the bodies. */
async function receiver(t) {
  const hits = []
  const rx = http.createServer((req, res) => {
    const chunks = []
    req.on("data", (d) => chunks.push(d))
    req.on("end", () => {
      hits.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      res.writeHead(200, { "content-type": "application/json" })
      res.end('{"done":true}')
    })
  })
  await new Promise((ok) => rx.listen(0, "127.0.0.1", ok))
  t.after(() => new Promise((ok) => { rx.closeAllConnections(); rx.close(ok) }))
  return { url: `http://127.0.0.1:${rx.address().port}/hook`, hits }
}

test("operations - --public-url: Location, JWKS, callback and snapshot URLs use it whatever the Host", { timeout: 60_000 }, async (t) => {
  const PUBLIC = "https://chat.example.com/parley"
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--public-url", `${PUBLIC}/`] })
  const c = client(srv, ADMIN_KEY, { headers: { Host: "internal.lan:8080" } })

  const created = await c.put("/v1/stream/jobs/a", undefined, { headers: { "Content-Type": "application/json" } })
  expectStatus(created, 201)
  assert.equal(created.headers.location, `${PUBLIC}/v1/stream/jobs/a`)

  const rx = await receiver(t)
  const sub = expectStatus(await c.put("/v1/stream/__ds/subscriptions/hooks", { type: "webhook", pattern: "jobs/*", webhook: { url: rx.url } }), 201)
  assert.equal(sub.webhook.signing.jwks_url, `${PUBLIC}/v1/stream/__ds/jwks.json`)
  const again = expectStatus(await client(srv, ADMIN_KEY, { headers: { Host: "other.lan" } }).get("/v1/stream/__ds/subscriptions/hooks"), 200)
  assert.equal(again.webhook.signing.jwks_url, `${PUBLIC}/v1/stream/__ds/jwks.json`)
  expectStatus(await c.post("/v1/stream/jobs/a", { job: 1 }), 204)
  await until("the webhook", () => rx.hits.length > 0, 10_000)
  assert.equal(rx.hits[0].callback_url, `${PUBLIC}/v1/stream/__ds/subscriptions/hooks/callback`)

  const conv = expectStatus(await c.post("/v1/conversations", { title: "t" }), 201)
  const snapRes = await c.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}`, public: true })
  const snap = expectStatus(snapRes, 201)
  assert.equal(snap.url, `${PUBLIC}/v1/snapshots/${snap.id}`)
  assert.equal(snapRes.headers.location, snap.url)
  assert.equal(expectStatus(await c.get(`/v1/snapshots/${snap.id}`), 200).url, snap.url)
  assert.equal(expectStatus(await c.get("/v1/snapshots"), 200).items[0].url, snap.url)

  // Without it, the Host the request came through (as before).
  const plain = await startServer({ t, args: ["--admin-key", ADMIN_KEY] })
  const p = client(plain, ADMIN_KEY, { headers: { Host: "internal.lan:8080" } })
  const res = await p.put("/v1/stream/x", undefined, { headers: { "Content-Type": "application/json" } })
  assert.equal(res.headers.location, "http://internal.lan:8080/v1/stream/x")
  const psnap = expectStatus(await p.post("/v1/snapshots", { source: `/v1/conversations/${expectStatus(await p.post("/v1/conversations", {}), 201).id}` }), 201)
  assert.equal(psnap.url, `/v1/snapshots/${psnap.id}`)
})

test("operations - an invalid --public-url exits 2 with a clear message", { timeout: 60_000 }, async () => {
  for (const bad of ["ftp://chat.example.com", "chat.example.com", "https://", "https://chat.example.com/?q=1", "https://chat.example.com/#x", "https://user@chat.example.com", "https://chat example.com", "https://chat.example.com:0", "https://chat.example.com:99999", `https://${"a".repeat(200)}.com`]) {
    const r = await runParley(["serve", "--public-url", bad])
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`)
    assert.ok(r.stderr.includes(`invalid value '${bad}' for --public-url: give the origin clients use`), r.stderr)
  }
  const r = await runParley(["serve"], { env: { PARLEY_PUBLIC_URL: "javascript:alert(1)" } })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /invalid value 'javascript:alert\(1\)' in PARLEY_PUBLIC_URL: give the origin/)
})
