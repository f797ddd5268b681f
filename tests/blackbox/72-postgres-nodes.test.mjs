// Black-box: two nodes on one PostgreSQL database. Runs only against a
// private PostgreSQL server (tests/lib/with-pg sets PARLEY_TEST_STORE);
// skipped otherwise.
//
// What it guarantees: a live reader parked on node B (long-poll and SSE)
// is woken by an append committed through node A, within a fraction of a
// second and not at its long-poll timeout (the commit's NOTIFY reaches B's
// listener, which wakes its hub). Reports the median and worst wake-up
// latency over 20 appends. And a node whose LISTEN connection is lost
// while another node commits (the database refuses new connections for a
// while, so the notification is gone) wakes its parked readers once it
// listens again: the reader gets the data, not its timeout. Maintenance
// runs on one node at a time (it holds an advisory lock), and another node
// takes it over once that node is killed.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import http from "node:http"
import { test } from "node:test"

import { sseParser } from "./lib/api.mjs"
import { append, createStream, request } from "./lib/http.mjs"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"

const skip = TEST_PG_URL ? false : "needs a private PostgreSQL (tests/lib/with-pg)"
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const LONG_POLL_MS = 5000
const ROUNDS = 20

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

test("postgres - two nodes on one database: readers on node B wake on an append through node A", { skip, timeout: 120_000 }, async (t) => {
  const args = ["--long-poll-timeout", String(LONG_POLL_MS)]
  const a = await startServer({ t, args })
  assert.ok(a.pgUrl, "the first node's database URL")
  const b = await startServer({ t, args: ["--store", a.pgUrl, ...args] })
  const name = "nodes/chat"
  assert.equal((await createStream(a.url, name)).status, 201)
  const first = await append(a.url, name, "x")
  let tail = first.headers["stream-next-offset"]

  // One SSE reader on node B for the whole run: records when each payload arrives.
  const agent = new http.Agent({ keepAlive: false })
  t.after(() => agent.destroy())
  const sseSeen = new Map() // payload -> arrival time
  const sse = http.request(
    { host: "127.0.0.1", port: b.port, path: `/v1/stream/${name}?offset=${tail}&live=sse`, agent, headers: { Accept: "text/event-stream" } },
    (res) => {
      assert.equal(res.statusCode, 200)
      res.setEncoding("utf8")
      res.on("data", sseParser((ev) => {
        if (ev.type === "data") for (const p of ev.data.split("|")) if (p) sseSeen.set(p, Date.now())
      }))
      res.on("error", () => {})
    },
  )
  sse.on("error", () => {})
  sse.end()
  t.after(() => sse.destroy())
  await sleep(300)

  const pollMs = []
  const sseMs = []
  for (let i = 0; i < ROUNDS; i++) {
    const payload = `m${i}|`
    const poll = request(b.url, `/v1/stream/${name}?offset=${tail}&live=long-poll`, { timeoutMs: LONG_POLL_MS * 3 })
    await sleep(100) // the poll parks on node B
    const t0 = Date.now()
    const res = await append(a.url, name, payload)
    assert.ok(res.status >= 200 && res.status < 300, `append on A: ${res.status}`)
    const got = await poll
    const t1 = Date.now()
    assert.equal(got.status, 200, `long-poll on B answered ${got.status} (woken only by its timeout?)`)
    assert.equal(got.text, payload)
    pollMs.push(t1 - t0)
    tail = got.headers["stream-next-offset"]
    const deadline = Date.now() + LONG_POLL_MS
    while (!sseSeen.has(`m${i}`) && Date.now() < deadline) await sleep(5)
    assert.ok(sseSeen.has(`m${i}`), `SSE reader on B never received m${i}`)
    sseMs.push(Math.max(0, sseSeen.get(`m${i}`) - t0))
  }
  for (const ms of pollMs) assert.ok(ms < LONG_POLL_MS / 2, `long-poll woke after ${ms} ms`)
  t.diagnostic(
    `cross-node wake-up over ${ROUNDS} appends (append on A sent -> reader on B has it): ` +
      `long-poll median ${median(pollMs)} ms, max ${Math.max(...pollMs)} ms; ` +
      `SSE median ${median(sseMs)} ms, max ${Math.max(...sseMs)} ms`,
  )
})

/** Run one SQL command on the test PostgreSQL server (its admin database). */
function psql(sql) {
  const res = spawnSync("psql", [TEST_PG_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8", timeout: 30_000 })
  assert.equal(res.status, 0, `psql ${sql}: ${res.stderr}`)
  return res.stdout.trim()
}

test("postgres - a node that loses its LISTEN connection wakes its readers once listening again", { skip, timeout: 60_000 }, async (t) => {
  const args = ["--long-poll-timeout", String(LONG_POLL_MS)]
  const a = await startServer({ t, args })
  const b = await startServer({ t, args: ["--store", a.pgUrl, ...args] })
  const db = a.pgDatabase
  // (The database may be dropped already by node A's cleanup.)
  t.after(() => spawnSync("psql", [TEST_PG_URL, "-qAtc", `ALTER DATABASE ${db} ALLOW_CONNECTIONS true`]))
  const name = "nodes/gap"
  assert.equal((await createStream(a.url, name)).status, 201)
  const tail = (await append(a.url, name, "x")).headers["stream-next-offset"]
  // Warm node B's read path, then park a long-poll on it.
  assert.equal((await request(b.url, `/v1/stream/${name}?offset=-1`)).status, 200)
  const start = Date.now()
  const poll = request(b.url, `/v1/stream/${name}?offset=${tail}&live=long-poll`, { timeoutMs: LONG_POLL_MS * 3 })
  await sleep(200)
  // Node B's listener loses its connection and cannot get it back...
  psql(`ALTER DATABASE ${db} ALLOW_CONNECTIONS false`)
  const killed = psql(
    `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${db}' AND application_name = 'parley-listen' AND pid <> pg_backend_pid()`,
  )
  assert.equal(killed, "2", "both nodes' listeners")
  await sleep(300)
  // ...while node A commits: that notification never reaches node B.
  const res = await append(a.url, name, "gap")
  assert.ok(res.status >= 200 && res.status < 300, `append on A: ${res.status} ${res.text}`)
  await sleep(300)
  psql(`ALTER DATABASE ${db} ALLOW_CONNECTIONS true`)
  const got = await poll
  const elapsed = Date.now() - start
  assert.equal(got.status, 200, `long-poll on B answered ${got.status} (the missed notification was never made up for)`)
  assert.equal(got.text, "gap")
  assert.ok(elapsed < LONG_POLL_MS, `woken after ${elapsed} ms`)
})

test("postgres - maintenance runs on one node at a time; another takes over when it dies", { skip, timeout: 60_000 }, async (t) => {
  const MAINT = "this node runs maintenance"
  const waitFor = async (what, ok, ms) => {
    const deadline = Date.now() + ms
    while (!ok() && Date.now() < deadline) await sleep(50)
    assert.ok(ok(), what)
  }
  // The lock (advisory, key 0x7061726c6d74) held by writer sessions.
  const holders = () =>
    psql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 28769 AND objid = 1919708532 AND granted`)
  const a = await startServer({ t })
  await waitFor("node A (alone) runs maintenance", () => a.stderr().includes(MAINT), 5000)
  const b = await startServer({ t, args: ["--store", a.pgUrl] })
  await sleep(2500) // several ticks of node B
  assert.ok(!b.stderr().includes(MAINT), "node B runs maintenance while node A does")
  assert.equal(holders(), "1")
  await a.kill9()
  await waitFor("node B takes maintenance over once node A is gone", () => b.stderr().includes(MAINT), 10_000)
  assert.equal(holders(), "1")
})

test("postgres - webhook wakes are sent by one node, not by every node that sees them due", { skip, timeout: 60_000 }, async (t) => {
  // A slow receiver keeps each POST in flight for a while: a node that
  // delivers while another node does would POST the same wake too.
  const hits = []
  const rx = http.createServer((req, res) => {
    const chunks = []
    req.on("data", (c) => chunks.push(c))
    req.on("end", () => {
      hits.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      }, 800)
    })
  })
  await new Promise((ok) => rx.listen(0, "127.0.0.1", ok))
  t.after(() => new Promise((ok) => { rx.closeAllConnections(); rx.close(ok) }))
  const hook = `http://127.0.0.1:${rx.address().port}/hook`

  const a = await startServer({ t })
  const b = await startServer({ t, args: ["--store", a.pgUrl] })
  await sleep(1500) // both nodes have ticked: one of them holds maintenance
  const subs = 4
  for (let i = 0; i < subs; i++) {
    const res = await request(a.url, `/v1/stream/__ds/subscriptions/hook-${i}`, {
      method: "PUT",
      body: JSON.stringify({ type: "webhook", pattern: `hooked-${i}/*`, webhook: { url: hook } }),
      headers: { "Content-Type": "application/json" },
    })
    assert.equal(res.status, 201, res.text)
  }
  // A stream under each pattern, made through both nodes: each makes one wake due.
  for (let i = 0; i < subs; i++) {
    const node = i % 2 ? b : a
    assert.equal((await createStream(node.url, `hooked-${i}/s`)).status, 201)
    const res = await append(node.url, `hooked-${i}/s`, "work")
    assert.ok(res.status >= 200 && res.status < 300, `append: ${res.status} ${res.text}`)
  }
  const deadline = Date.now() + 10_000
  while (new Set(hits.map((h) => h.subscription_id ?? h.wake_id)).size < subs && Date.now() < deadline) await sleep(50)
  await sleep(2500) // time for a second node's POSTs, had there been any
  const perWake = new Map()
  for (const h of hits) {
    const k = `${h.wake_id}/${h.generation}`
    perWake.set(k, (perWake.get(k) ?? 0) + 1)
  }
  assert.ok(perWake.size >= subs, `a wake per subscription reached the receiver: ${JSON.stringify([...perWake])}`)
  const twice = [...perWake].filter(([, n]) => n > 1)
  assert.deepEqual(twice, [], "no wake was POSTed more than once")
})
