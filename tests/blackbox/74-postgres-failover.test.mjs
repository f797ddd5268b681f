// Black-box: several nodes on one PostgreSQL database, as a deployment
// behind a load balancer runs them. Runs only against a private PostgreSQL
// server (tests/lib/with-pg sets PARLEY_TEST_STORE); skipped otherwise.
//
// What it guarantees:
// - kill -9 of one node while eight writers spread over two nodes keep
//   writing (chat messages with Idempotency-Keys, stream appends with
//   producer headers), each request the killed node never answered retried
//   through the other node with the same key or producer tuple until
//   answered: every acknowledged write is stored exactly once, message seq
//   is gap-free, the stream holds exactly the acknowledged appends, each
//   producer's in order; the restarted node serves the same data.
// - The in-flight rule holds across nodes: while a request with an
//   Idempotency-Key is in flight on node A (held deterministically: the
//   test locks the conversation row A's write needs), the same key through
//   node B is 409 idempotency_key_in_flight at once, whatever its body;
//   once A commits, the retry through B replays A's answer byte for byte
//   and another body with the key is 422 idempotency_key_reused.
// - Two nodes writing the same rows (a conversation and a stream, eight
//   writers) never stall for the database's deadlock detection: at most 1%
//   of the writes take 900 ms or more (a second is PostgreSQL's
//   deadlock_timeout).
// - A read through one node renews a TTL stream's sliding window on every
//   node (the other node neither answers 404 nor expires it early).
// - Two workers on two nodes claiming concurrently: every pending session
//   is claimed by exactly one of them.
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import http from "node:http"
import { test } from "node:test"

import { request } from "./lib/http.mjs"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"

const skip = TEST_PG_URL ? false : "needs a private PostgreSQL (tests/lib/with-pg)"
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const JSON_CT = { "Content-Type": "application/json" }

/** Two nodes on one new database: { a, b } (b started with a's --store). */
async function twoNodes(t, args = []) {
  const a = await startServer({ t, args })
  assert.ok(a.pgUrl, "the first node's database URL")
  const b = await startServer({ t, args: ["--store", a.pgUrl, ...args] })
  return { a, b }
}

/** Every message of a conversation, checking seq is 1, 2, 3... */
async function allMessages(base, id) {
  const out = []
  let after = 0
  for (;;) {
    const res = await request(base, `/v1/conversations/${id}/messages?after=${after}&limit=100`)
    assert.equal(res.status, 200, `messages: ${res.status} ${res.text}`)
    const page = res.json()
    for (const m of page.items) {
      assert.equal(m.seq, after + 1, `seq gap after ${after}`)
      after = m.seq
      out.push(m)
    }
    if (!page.next_cursor && page.items.length < 100) return out
  }
}

/** Every byte of a stream, following Stream-Next-Offset to the tail. */
async function readStream(base, name) {
  const parts = []
  let offset = "-1"
  for (let page = 0; page < 10_000; page++) {
    const res = await request(base, `/v1/stream/${name}?offset=${offset}`)
    assert.equal(res.status, 200, `read ${name}: ${res.status} ${res.text}`)
    parts.push(res.body)
    offset = res.headers["stream-next-offset"]
    if (res.headers["stream-up-to-date"] === "true") return Buffer.concat(parts).toString("utf8")
  }
  throw new Error(`more than 10000 pages in ${name}`)
}

test("postgres - kill -9 of one node under 8 writers on two nodes: retries through the other node land once", { skip, timeout: 120_000 }, async (t) => {
  const { a, b } = await twoNodes(t)
  const nodes = [a, b]
  const conv = await request(a.url, "/v1/conversations", { method: "POST", headers: JSON_CT, body: '{"title":"failover"}' })
  assert.equal(conv.status, 201, conv.text)
  const id = conv.json().id
  const stream = "failover/log"
  assert.equal((await request(b.url, `/v1/stream/${stream}`, { method: "PUT", headers: { "Content-Type": "text/plain" } })).status, 201)

  const WRITERS = 8
  const ackedMessages = new Set()
  const ackedAppends = new Map() // producer -> [values in seq order]
  let failedOver = 0 // requests A never answered, then answered by B
  let inFlight409 = 0
  let dead = null // the node killed, once it is
  let stop = false

  // Send one request to a node, and if that node does not answer (the
  // connection is reset or refused), the same request to the other node,
  // until one answers something other than 409 in flight or 503.
  async function sendUntilAnswered(prefer, path, opts) {
    let node = prefer
    let switched = false
    for (let attempt = 0; attempt < 200; attempt++) {
      if (node === dead) {
        node = nodes[1 - nodes.indexOf(node)]
        switched = true
      }
      let res
      try {
        res = await request(node.url, path, { ...opts, timeoutMs: 10_000 })
      } catch {
        // No answer: the write may or may not have landed. Retry the same
        // request through the other node.
        node = nodes[1 - nodes.indexOf(node)]
        switched = true
        await sleep(20)
        continue
      }
      if (res.status === 409 && res.text.includes("idempotency_key_in_flight")) {
        inFlight409++
        await sleep(50)
        continue
      }
      if (res.status === 503) {
        await sleep(50)
        continue
      }
      if (switched) failedOver++
      return res
    }
    throw new Error(`${path}: no answer after 200 attempts`)
  }

  const writers = Array.from({ length: WRITERS }, async (_, w) => {
    const prefer = nodes[w % 2]
    const producer = `w${w}`
    const mine = []
    ackedAppends.set(producer, mine)
    for (let i = 0; !stop; i++) {
      const value = `w${w}-m${i}`
      const res = await sendUntilAnswered(prefer, `/v1/conversations/${id}/messages`, {
        method: "POST",
        headers: { ...JSON_CT, "Idempotency-Key": `k-${value}` },
        body: JSON.stringify({ role: "user", content: value }),
      })
      assert.equal(res.status, 201, `message ${value}: ${res.status} ${res.text}`)
      assert.equal(res.json().content, value)
      ackedMessages.add(value)

      const chunk = `w${w}-a${i};`
      const ap = await sendUntilAnswered(prefer, `/v1/stream/${stream}`, {
        method: "POST",
        headers: { "Content-Type": "text/plain", "Producer-Id": producer, "Producer-Epoch": "0", "Producer-Seq": String(i) },
        body: chunk,
      })
      assert.ok(ap.status === 200 || ap.status === 204, `append ${chunk}: ${ap.status} ${ap.text}`)
      mine.push(chunk)
    }
  })

  await sleep(1000 + Math.floor(Math.random() * 500))
  const before = ackedMessages.size
  await a.kill9()
  dead = a
  await sleep(1500)
  stop = true
  await Promise.all(writers)
  const appendsTotal = [...ackedAppends.values()].reduce((n, v) => n + v.length, 0)

  const check = async (node, what) => {
    const msgs = await allMessages(node.url, id)
    const seen = new Map()
    for (const m of msgs) seen.set(m.content, (seen.get(m.content) ?? 0) + 1)
    for (const v of ackedMessages) assert.equal(seen.get(v), 1, `${what}: message ${v} acknowledged, found ${seen.get(v) ?? 0} times`)
    for (const [v, n] of seen) assert.equal(n, 1, `${what}: message ${v} stored ${n} times`)
    assert.equal(msgs.length, ackedMessages.size, `${what}: messages stored that were never acknowledged`)

    const text = await readStream(node.url, stream)
    const chunks = text.split(";").filter(Boolean).map((c) => `${c};`)
    assert.equal(chunks.length, appendsTotal, `${what}: ${chunks.length} chunks stored, ${appendsTotal} appends acknowledged`)
    for (const [producer, mine] of ackedAppends) {
      const stored = chunks.filter((c) => c.startsWith(`${producer}-`))
      assert.deepEqual(stored, mine, `${what}: producer ${producer}'s appends, in order, once each`)
    }
  }
  await check(b, "node B after the kill")
  await a.restart()
  await check(a, "node A restarted")
  assert.ok(before >= 10, `only ${before} messages before the kill`)
  assert.ok(ackedMessages.size > before, "no write acknowledged after the kill")
  t.diagnostic(
    `${ackedMessages.size} messages and ${appendsTotal} appends acknowledged (${before} messages before the kill), ` +
      `${failedOver} requests retried through the other node, ${inFlight409} in-flight 409s; all present once`,
  )
})

test("postgres - two nodes writing the same rows never wait for the database's deadlock detection", { skip, timeout: 60_000 }, async (t) => {
  // Each node's writer commits a batch of requests in one transaction, so
  // node A's batch can hold the conversation while it waits for the stream
  // that node B's batch holds while waiting for the conversation. Resolved
  // by PostgreSQL's deadlock detection, that costs every request of both
  // batches a second (deadlock_timeout); a batch's later requests must give
  // up waiting well before that and run again alone.
  const { a, b } = await twoNodes(t)
  const nodes = [a, b]
  const id = (await request(a.url, "/v1/conversations", { method: "POST", headers: JSON_CT, body: '{"title":"locks"}' })).json().id
  assert.equal((await request(a.url, "/v1/stream/locks/s", { method: "PUT", headers: { "Content-Type": "text/plain" } })).status, 201)
  const ms = []
  let stop = false
  const writers = Array.from({ length: 8 }, async (_, w) => {
    const node = nodes[w % 2]
    for (let i = 0; !stop; i++) {
      let t0 = Date.now()
      const m = await request(node.url, `/v1/conversations/${id}/messages`, {
        method: "POST",
        headers: { ...JSON_CT, "Idempotency-Key": `d-${w}-${i}` },
        body: JSON.stringify({ role: "user", content: `${w}-${i}` }),
      })
      assert.equal(m.status, 201, m.text)
      ms.push(Date.now() - t0)
      t0 = Date.now()
      const ap = await request(node.url, "/v1/stream/locks/s", {
        method: "POST",
        headers: { "Content-Type": "text/plain", "Producer-Id": `p${w}`, "Producer-Epoch": "0", "Producer-Seq": String(i) },
        body: `${w}-${i};`,
      })
      assert.equal(ap.status, 200, ap.text)
      ms.push(Date.now() - t0)
    }
  })
  await sleep(3000)
  stop = true
  await Promise.all(writers)
  ms.sort((x, y) => x - y)
  const slow = ms.filter((x) => x >= 900).length
  const summary = `${ms.length} writes in 3 s through two nodes: median ${ms[ms.length >> 1]} ms, p90 ${ms[Math.floor(ms.length * 0.9)]} ms, max ${ms[ms.length - 1]} ms; ${slow} took 900 ms or more`
  t.diagnostic(summary)
  assert.ok(slow <= ms.length / 100, summary)
  assert.equal((await allMessages(b.url, id)).length, ms.length / 2)
})

test("postgres - a read on one node renews a TTL stream's window for every node", { skip, timeout: 30_000 }, async (t) => {
  // Stream-TTL is a sliding window that reads renew. A node keeps a read's
  // touch in memory; with several nodes it must reach the database, or the
  // other node (serving the next request, or running the expiry) expires
  // the stream on the last stored touch.
  const { a, b } = await twoNodes(t)
  const name = "ttl/sliding"
  const created = await request(a.url, `/v1/stream/${name}`, { method: "PUT", headers: { "Content-Type": "text/plain", "Stream-TTL": "2" }, body: "x" })
  assert.equal(created.status, 201)
  const t0 = Date.now()
  await sleep(1300)
  assert.equal((await request(b.url, `/v1/stream/${name}?offset=-1`)).status, 200, "read on B within the TTL")
  await sleep(2600 - (Date.now() - t0)) // past the window the creation started, inside the one B's read started
  const onA = await request(a.url, `/v1/stream/${name}?offset=-1`)
  assert.equal(onA.status, 200, `read on A ${Date.now() - t0} ms after the creation, ${Date.now() - t0 - 1300} ms after B's read: ${onA.status}`)
  assert.equal(onA.text, "x")
  // Unread, it expires on both nodes.
  await sleep(4000)
  for (const node of [a, b]) assert.equal((await request(node.url, `/v1/stream/${name}?offset=-1`)).status, 404)
})

/**
 * A psql session on db that takes `sql`'s row locks and holds them in an open
 * transaction until release(): { ready, release() }.
 */
function holdLock(dbUrl, sql) {
  const p = spawn("psql", [dbUrl, "-v", "ON_ERROR_STOP=1", "-qAt"], { stdio: ["pipe", "pipe", "pipe"] })
  let out = ""
  let err = ""
  p.stdout.setEncoding("utf8").on("data", (d) => (out += d))
  p.stderr.setEncoding("utf8").on("data", (d) => (err += d))
  const exited = new Promise((ok) => p.once("exit", ok))
  p.stdin.write(`BEGIN;\n${sql};\nSELECT 'locked';\n`)
  const ready = (async () => {
    const deadline = Date.now() + 10_000
    while (!out.includes("locked")) {
      if (p.exitCode !== null || Date.now() > deadline) throw new Error(`psql did not take the lock: ${err}`)
      await sleep(10)
    }
  })()
  return {
    ready,
    release: async () => {
      if (p.exitCode === null) p.stdin.end("COMMIT;\n")
      await exited
    },
  }
}

test("postgres - the same Idempotency-Key in flight on another node is 409, then replays that node's answer", { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await twoNodes(t)
  const conv = await request(a.url, "/v1/conversations", { method: "POST", headers: JSON_CT, body: '{"title":"in flight"}' })
  assert.equal(conv.status, 201)
  const id = conv.json().id
  const path = `/v1/conversations/${id}/messages`
  const post = (node, content, timeoutMs = 15_000) =>
    request(node.url, path, {
      method: "POST",
      headers: { ...JSON_CT, "Idempotency-Key": "held-1" },
      body: JSON.stringify({ role: "user", content }),
      timeoutMs,
    })

  // Hold node A's write in flight: its writer waits for the conversation row.
  const hold = holdLock(a.pgUrl, `SELECT id FROM conversations WHERE id = '${id}' FOR UPDATE`)
  t.after(() => hold.release())
  await hold.ready
  const onA = post(a, "hello")
  await sleep(300) // A's writer is inside its transaction, waiting for the row

  const t0 = Date.now()
  const same = await post(b, "hello", 5000)
  const other = await post(b, "another body", 5000)
  const waited = Date.now() - t0
  assert.equal(same.status, 409, `same request through B while A has it in flight: ${same.status} ${same.text}`)
  assert.equal(same.json().error.code, "idempotency_key_in_flight")
  assert.equal(same.headers["retry-after"], "1")
  assert.equal(other.status, 409, `another body through B while A has the key in flight: ${other.status} ${other.text}`)
  assert.equal(other.json().error.code, "idempotency_key_in_flight")
  assert.ok(waited < 3000, `B took ${waited} ms to answer (it waited for A)`)

  await hold.release()
  const first = await onA
  assert.equal(first.status, 201, `A: ${first.status} ${first.text}`)
  assert.equal(first.headers["idempotent-replayed"], undefined)

  const replay = await post(b, "hello")
  assert.equal(replay.status, 201, `retry through B: ${replay.status} ${replay.text}`)
  assert.equal(replay.headers["idempotent-replayed"], "true")
  assert.equal(replay.text, first.text, "B replays A's answer byte for byte")
  const reused = await post(b, "another body")
  assert.equal(reused.status, 422, `another body through B after A committed: ${reused.status} ${reused.text}`)
  assert.equal(reused.json().error.code, "idempotency_key_reused")
  const msgs = await allMessages(b.url, id)
  assert.deepEqual(msgs.map((m) => m.content), ["hello"])
  t.diagnostic(`B answered both in-flight requests in ${waited} ms`)
})

test("postgres - two workers on two nodes claim every pending session exactly once", { skip, timeout: 60_000 }, async (t) => {
  const { a, b } = await twoNodes(t)
  const SESSIONS = 60
  const sessions = new Set()
  for (let c = 0; c < 6; c++) {
    const conv = await request(a.url, "/v1/conversations", { method: "POST", headers: JSON_CT, body: `{"title":"c${c}"}` })
    assert.equal(conv.status, 201)
    const id = conv.json().id
    for (let m = 0; m < SESSIONS / 6; m++) {
      const res = await request([a, b][m % 2].url, `/v1/conversations/${id}/messages`, {
        method: "POST",
        headers: JSON_CT,
        body: JSON.stringify({ role: "user", content: `q${m}`, process: true }),
      })
      assert.equal(res.status, 201, res.text)
      const sid = res.json().session_id
      assert.ok(sid, `a session: ${res.text}`)
      sessions.add(sid)
    }
  }
  assert.equal(sessions.size, SESSIONS)

  // Each worker claims with four requests at a time through its own node,
  // until its node has had nothing to claim twice in a row.
  const claims = new Map() // session id -> [worker]
  const agents = [new http.Agent({ keepAlive: true }), new http.Agent({ keepAlive: true })]
  t.after(() => agents.forEach((x) => x.destroy()))
  const worker = async (w, node) => {
    let empty = 0
    while (empty < 2) {
      const res = await request(node.url, "/v1/sessions/claim", { method: "POST", headers: JSON_CT, body: `{"lease_seconds":60}`, agent: agents[w] })
      if (res.status === 204) {
        empty++
        await sleep(20)
        continue
      }
      assert.equal(res.status, 200, `claim on worker ${w}: ${res.status} ${res.text}`)
      empty = 0
      const s = res.json()
      assert.equal(s.status, "processing")
      assert.equal(s.attempt, 1, `session ${s.id} claimed on attempt ${s.attempt}`)
      claims.set(s.id, [...(claims.get(s.id) ?? []), w])
    }
  }
  await Promise.all([0, 1, 2, 3].flatMap((i) => [worker(0, a), worker(1, b)]))
  const doubled = [...claims].filter(([, ws]) => ws.length > 1)
  assert.deepEqual(doubled, [], "sessions claimed more than once")
  assert.deepEqual([...sessions].filter((s) => !claims.has(s)), [], "pending sessions nobody claimed")
  assert.equal(claims.size, SESSIONS)
  const byWorker = [0, 1].map((w) => [...claims.values()].filter((ws) => ws[0] === w).length)
  t.diagnostic(`${SESSIONS} sessions claimed once each: ${byWorker[0]} by the worker on node A, ${byWorker[1]} on node B`)
})
