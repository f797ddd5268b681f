// Idempotency-Key on POST and PATCH: replays of the stored response, reuse
// with another request, requests in flight, per-user scope, invalid keys,
// records across restart and kill -9, and expiry.
import assert from "node:assert/strict"
import http from "node:http"
import { spawnSync } from "node:child_process"
import { test } from "node:test"

import { client, expectError, expectStatus, listAll, readEvents, sleep, userToken } from "./lib/api.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-idem-1"
const SECRET = "test-jwt-secret-idem-1"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]

function startAuthServer(t, extra = []) {
  return startServer({ t, args: [...AUTH_ARGS, ...extra] })
}

const key = (k) => ({ headers: { "Idempotency-Key": k } })

function assertReplay(res, first, what) {
  assert.equal(res.status, first.status, `${what}: status of the replay: ${res.text}`)
  assert.equal(res.headers["idempotent-replayed"], "true", `${what}: Idempotent-Replayed header`)
  assert.equal(res.text, first.text, `${what}: the replay is the stored response`)
}

test("idempotency - a retried document POST replays the stored response and creates nothing", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const first = await alice.post("/v1/documents/notes", { text: "hello" }, key("create-1"))
  const doc = expectStatus(first, 201, "first POST")
  assert.equal(first.headers["idempotent-replayed"], undefined, "the first answer is not a replay")

  for (let i = 0; i < 3; i++) {
    const again = await alice.post("/v1/documents/notes", { text: "hello" }, key("create-1"))
    assertReplay(again, first, `retry ${i}`)
    assert.equal(again.headers.location, first.headers.location, `retry ${i}: Location`)
    assert.equal(again.headers.etag, first.headers.etag, `retry ${i}: ETag`)
  }
  // Nothing new was created.
  const items = await listAll(alice, "notes")
  assert.deepEqual(
    items.map((d) => d.id),
    [doc.id],
  )
  const { events } = await readEvents(alice)
  assert.equal(events.filter((e) => e.type === "document.created").length, 1, JSON.stringify(events))

  // A new key is a new request.
  const other = expectStatus(await alice.post("/v1/documents/notes", { text: "hello" }, key("create-2")), 201)
  assert.notEqual(other.id, doc.id)
  assert.equal((await listAll(alice, "notes")).length, 2)
})

test("idempotency - the same key for a different request is 422 idempotency_key_reused", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const first = await alice.post("/v1/documents/notes", { n: 1 }, key("k-reuse"))
  expectStatus(first, 201, "first POST")
  expectStatus(await alice.put("/v1/documents/notes/fixed", { v: 1 }), 201)

  const reuses = [
    ["another body", () => alice.post("/v1/documents/notes", { n: 2 }, key("k-reuse"))],
    ["another collection", () => alice.post("/v1/documents/other", { n: 1 }, key("k-reuse"))],
    ["another method and path", () => alice.patch("/v1/documents/notes/fixed", { n: 1 }, key("k-reuse"))],
  ]
  for (const [what, send] of reuses) expectError(await send(), 422, "idempotency_key_reused", what)

  // None of them changed anything, and the original still replays.
  assert.equal((await listAll(alice, "notes")).length, 2)
  assert.equal((await listAll(alice, "other")).length, 0)
  assert.equal(expectStatus(await alice.get("/v1/documents/notes/fixed"), 200).version, 1)
  assertReplay(await alice.post("/v1/documents/notes", { n: 1 }, key("k-reuse")), first, "original request")

  // The same for a PATCH key.
  const patched = await alice.patch("/v1/documents/notes/fixed", { a: 1 }, key("k-patch"))
  expectStatus(patched, 200, "PATCH")
  expectError(await alice.patch("/v1/documents/notes/fixed", { a: 2 }, key("k-patch")), 422, "idempotency_key_reused", "PATCH, another body")
  assert.deepEqual(expectStatus(await alice.get("/v1/documents/notes/fixed"), 200).data, { v: 1, a: 1 })
})

test("idempotency - a retried PATCH applies once and replays its stored response", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  expectStatus(await alice.put("/v1/documents/counters/c", { items: ["a"] }), 201)
  const first = await alice.patch("/v1/documents/counters/c", { items: ["a", "b"], touched: true }, key("patch-1"))
  const v2 = expectStatus(first, 200, "PATCH")
  assert.equal(v2.version, 2)

  const again = await alice.patch("/v1/documents/counters/c", { items: ["a", "b"], touched: true }, key("patch-1"))
  assertReplay(again, first, "PATCH retry")
  assert.equal(expectStatus(await alice.get("/v1/documents/counters/c"), 200).version, 2, "the retry made no new version")

  // After another change, the replay still answers what was stored then,
  // and does not undo the later change.
  const v3 = expectStatus(await alice.put("/v1/documents/counters/c", { items: [] }), 200)
  assert.equal(v3.version, 3)
  assertReplay(await alice.patch("/v1/documents/counters/c", { items: ["a", "b"], touched: true }, key("patch-1")), first, "late PATCH retry")
  const now = expectStatus(await alice.get("/v1/documents/counters/c"), 200)
  assert.equal(now.version, 3)
  assert.deepEqual(now.data, { items: [] })

  const { events } = await readEvents(alice)
  assert.deepEqual(
    events.map((e) => [e.type, e.document?.version]),
    [
      ["document.created", 1],
      ["document.updated", 2],
      ["document.updated", 3],
    ],
  )
})

test("idempotency - a retried stream append is stored once", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const s = "/v1/stream/idem/log"
  expectStatus(await alice.call("PUT", s, { headers: { "Content-Type": "application/json" } }), 201)
  const first = await alice.post(s, { token: "Hel" }, key("append-1"))
  expectStatus(first, 204, "append")
  assert.equal(first.headers["idempotent-replayed"], undefined)
  const again = await alice.post(s, { token: "Hel" }, key("append-1"))
  assert.equal(again.status, 204, `retry: ${again.status} ${again.text}`)
  assert.equal(again.headers["idempotent-replayed"], "true")
  assert.equal(again.headers["stream-next-offset"], first.headers["stream-next-offset"])
  expectError(await alice.post(s, { token: "lo" }, key("append-1")), 422, "idempotency_key_reused", "another body")
  expectStatus(await alice.post(s, { token: "lo" }, key("append-2")), 204)
  const read = await alice.get(`${s}?offset=-1`)
  assert.deepEqual(JSON.parse(read.text), [{ token: "Hel" }, { token: "lo" }])
})

test("idempotency - keys are per user", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const a = await alice.post("/v1/documents/notes", { same: "body" }, key("shared-key"))
  const b = await bob.post("/v1/documents/notes", { same: "body" }, key("shared-key"))
  const ad = expectStatus(a, 201, "alice")
  const bd = expectStatus(b, 201, "bob")
  assert.equal(b.headers["idempotent-replayed"], undefined, "bob's request is not a replay of alice's")
  assert.notEqual(ad.id, bd.id)
  // Each replays their own; a different body is only a reuse for its owner.
  assertReplay(await bob.post("/v1/documents/notes", { same: "body" }, key("shared-key")), b, "bob's retry")
  assertReplay(await alice.post("/v1/documents/notes", { same: "body" }, key("shared-key")), a, "alice's retry")
  expectStatus(await client(srv, userToken("carol", SECRET)).post("/v1/documents/notes", { other: 1 }, key("shared-key")), 201, "carol, another body")
  assert.deepEqual((await listAll(alice, "notes")).map((d) => d.id), [ad.id])
  assert.deepEqual((await listAll(bob, "notes")).map((d) => d.id), [bd.id])
})

test("idempotency - an invalid key is 400 invalid_idempotency_key", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  expectStatus(await alice.put("/v1/documents/notes/p", { v: 1 }), 201)
  const bad = {
    empty: "",
    "256 characters": "k".repeat(256),
    "a tab": "a\tb",
    "a Latin-1 byte": "caf\u00e9",
  }
  for (const [what, k] of Object.entries(bad)) {
    expectError(await alice.post("/v1/documents/notes", { v: 1 }, key(k)), 400, "invalid_idempotency_key", `POST, key with ${what}`)
    expectError(await alice.patch("/v1/documents/notes/p", { w: 1 }, key(k)), 400, "invalid_idempotency_key", `PATCH, key with ${what}`)
  }
  // Nothing was written by them.
  assert.equal((await listAll(alice, "notes")).length, 1)
  assert.equal(expectStatus(await alice.get("/v1/documents/notes/p"), 200).version, 1)

  // The edges of the valid range work.
  const printable = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join("")
  for (const k of ["k", "k".repeat(255), printable]) {
    const first = await alice.post("/v1/documents/notes", { k: k.length }, key(k))
    expectStatus(first, 201, `key of ${k.length} characters`)
    assertReplay(await alice.post("/v1/documents/notes", { k: k.length }, key(k)), first, `key of ${k.length} characters`)
  }
})

test("idempotency - 50 concurrent identical POSTs with one key create exactly one document", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const n = 50
  const results = await Promise.all(
    Array.from({ length: n }, () => alice.post("/v1/documents/burst", { text: "only once" }, key("burst-key"))),
  )
  const fresh = results.filter((r) => r.status === 201 && r.headers["idempotent-replayed"] === undefined)
  const replayed = results.filter((r) => r.status === 201 && r.headers["idempotent-replayed"] === "true")
  const inFlight = results.filter((r) => r.status === 409)
  const other = results.filter((r) => r.status !== 201 && r.status !== 409)
  assert.deepEqual(other.map((r) => `${r.status} ${r.text}`), [], "only 201 and 409 answers")
  assert.equal(fresh.length, 1, "exactly one answer is the original 201")
  for (const r of inFlight) expectError(r, 409, "idempotency_key_in_flight", "concurrent duplicate")
  const id = fresh[0].json().id
  for (const r of replayed) assert.equal(r.text, fresh[0].text, "every replay is the original response")
  t.diagnostic(`1 created, ${replayed.length} replayed, ${inFlight.length} in flight`)

  const items = await listAll(alice, "burst")
  assert.deepEqual(
    items.map((d) => d.id),
    [id],
    "exactly one document",
  )
  const { events } = await readEvents(alice)
  assert.equal(events.length, 1, `exactly one event: ${JSON.stringify(events)}`)
  // Once it is done, a retry replays.
  assertReplay(await alice.post("/v1/documents/burst", { text: "only once" }, key("burst-key")), fresh[0], "retry after the burst")
})

test("idempotency - concurrent retries of a finished request all get its stored answer", { timeout: 30_000 }, async (t) => {
  // The in-flight 409 is only for a key whose first request is still being
  // processed; once it is answered, any number of simultaneous retries
  // replay it (and none of them goes through the writer).
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const first = await alice.post("/v1/documents/retry", { text: "once" }, key("done-key"))
  expectStatus(first, 201, "first POST")
  const results = await Promise.all(
    Array.from({ length: 50 }, () => alice.post("/v1/documents/retry", { text: "once" }, key("done-key"))),
  )
  for (const r of results) assertReplay(r, first, "simultaneous retry")
  const other = await Promise.all(
    Array.from({ length: 10 }, () => alice.post("/v1/documents/retry", { text: "other" }, key("done-key"))),
  )
  for (const r of other) expectError(r, 422, "idempotency_key_reused", "simultaneous reuse")
  const items = await listAll(alice, "retry")
  assert.equal(items.length, 1, "exactly one document")
})

test("idempotency - the same key while the first request is in flight is 409 idempotency_key_in_flight", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  // In flight is a race: send pairs of duplicates at once until one of
  // them meets the other in flight (bounded).
  const agents = [new http.Agent({ keepAlive: true }), new http.Agent({ keepAlive: true })]
  t.after(() => agents.forEach((a) => a.destroy()))
  let seen = null
  for (let round = 0; round < 40 && !seen; round++) {
    const k = `race-${round}`
    const body = { round }
    const burst = await Promise.all(
      Array.from({ length: 10 }, (_, i) => alice.post("/v1/documents/race", body, { ...key(k), agent: agents[i % 2] })),
    )
    for (const r of burst) assert.ok(r.status === 201 || r.status === 409, `round ${round}: ${r.status} ${r.text}`)
    seen = burst.find((r) => r.status === 409) ?? null
    assert.equal(burst.filter((r) => r.status === 201 && !r.headers["idempotent-replayed"]).length, 1, `round ${round}: one original`)
  }
  assert.ok(seen, "no request met its duplicate in flight in 40 rounds of 10")
  const err = expectError(seen, 409, "idempotency_key_in_flight", "in flight")
  assert.match(err.message, /retry|progress|flight/i)
})

// A message POST looks its key up before parsing the body, and its record
// keeps the answer's text: the first answer, every retry (also after a
// restart) and a read of the message are the same message, byte for byte
// between the answers; nothing is stored twice; another body is 422.
test("idempotency - a retried message POST replays its answer byte for byte and stores one message", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const conv = expectStatus(await alice.post("/v1/conversations", { title: "t" }), 201)
  const msg = { role: "user", content: [{ type: "text", text: "h\u00e9llo \u2028 </script> \"q\"" }], metadata: { z: 0.1, a: 1e21, n: -0, s: "tab\t" } }
  const path = `/v1/conversations/${conv.id}/messages`
  const first = await alice.post(path, msg, key("msg-1"))
  const created = expectStatus(first, 201, "first POST")
  assert.equal(first.headers["idempotent-replayed"], undefined, "the first answer is not a replay")
  assert.equal(created.seq, 1)
  for (let i = 0; i < 3; i++) assertReplay(await alice.post(path, msg, key("msg-1")), first, `retry ${i}`)
  // The retries were answered from a worker's copy of the record: another
  // body is still 422, and the key is still alice's alone.
  for (let i = 0; i < 3; i++) {
    expectError(await alice.post(path, { ...msg, role: "system" }, key("msg-1")), 422, "idempotency_key_reused", `another body ${i}`)
  }
  const bob = client(srv, userToken("bob", SECRET))
  const bobConv = expectStatus(await bob.post("/v1/conversations", { title: "b" }), 201)
  const bobFirst = await bob.post(`/v1/conversations/${bobConv.id}/messages`, msg, key("msg-1"))
  expectStatus(bobFirst, 201, "bob's message with alice's key")
  assert.equal(bobFirst.headers["idempotent-replayed"], undefined, "another user's key is not a replay")
  assertReplay(await bob.post(`/v1/conversations/${bobConv.id}/messages`, msg, key("msg-1")), bobFirst, "bob's retry")
  await srv.restart()
  assertReplay(await alice.post(path, msg, key("msg-1")), first, "retry after restart")
  expectError(await alice.post(path, { ...msg, role: "system" }, key("msg-1")), 422, "idempotency_key_reused", "another body")
  const page = expectStatus(await alice.get(`${path}?after=0&limit=10`), 200)
  assert.equal(page.items.length, 1, "one message stored")
  assert.deepEqual(page.items[0], created, "the answer is the stored message")
  // A key not recorded yet still posts (the lookup before the parse missed).
  const second = expectStatus(await alice.post(path, { role: "user", content: "two" }, key("msg-2")), 201)
  assert.equal(second.seq, 2)
  // A body that is not JSON is still refused when its key is new.
  const bad = await alice.post(path, { role: "user", content: "x", metadata: { s: "\u0000" } }, key("msg-3"))
  assert.equal(bad.status, 400, bad.text)
})

test("idempotency - records survive a restart", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const post = await alice.post("/v1/documents/notes", { v: "before restart" }, key("survive-1"))
  expectStatus(post, 201)
  expectStatus(await alice.put("/v1/documents/notes/p", { a: 1 }), 201)
  const patch = await alice.patch("/v1/documents/notes/p", { b: 2 }, key("survive-2"))
  expectStatus(patch, 200)
  assert.equal(await srv.stop(), 0)
  await srv.restart()
  assertReplay(await alice.post("/v1/documents/notes", { v: "before restart" }, key("survive-1")), post, "POST after restart")
  assertReplay(await alice.patch("/v1/documents/notes/p", { b: 2 }, key("survive-2")), patch, "PATCH after restart")
  expectError(await alice.post("/v1/documents/notes", { v: "other" }, key("survive-1")), 422, "idempotency_key_reused", "reuse after restart")
  assert.equal((await listAll(alice, "notes")).length, 2)
  assert.equal(expectStatus(await alice.get("/v1/documents/notes/p"), 200).version, 2)
})

/** Send a POST and SIGKILL the server the moment the status line arrives. */
function postThenKill(srv, path, body, headers) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const req = http.request(
      {
        host: "127.0.0.1",
        port: srv.port,
        method: "POST",
        path,
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload), ...headers },
        agent: false,
      },
      (res) => {
        if (res.statusCode >= 200 && res.statusCode < 300) srv.proc.kill("SIGKILL")
        const chunks = []
        res.on("data", (c) => chunks.push(c))
        const done = () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") })
        res.on("end", done)
        res.on("error", done)
        res.on("aborted", done)
      },
    )
    req.setTimeout(10_000, () => req.destroy(new Error("POST timed out")))
    req.on("error", reject)
    req.end(payload)
  })
}

test("idempotency - a retry after kill -9 returns the stored response and creates nothing", { timeout: 45_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const token = userToken("alice", SECRET)
  const alice = client(srv, token)
  const auth = { Authorization: `Bearer ${token}` }
  const s = "/v1/stream/crash/log"
  expectStatus(await alice.call("PUT", s, { headers: { "Content-Type": "application/json" } }), 201)
  const rounds = 5
  const ids = []
  for (let i = 0; i < rounds; i++) {
    const k = `crash-doc-${i}`
    const first = await postThenKill(srv, "/v1/documents/crash", { round: i }, { ...auth, "Idempotency-Key": k })
    assert.equal(first.status, 201, `round ${i}: POST answered ${first.status} ${first.text}`)
    await srv.kill9()
    await srv.restart()
    const retry = await alice.post("/v1/documents/crash", { round: i }, key(k))
    assert.equal(retry.status, 201, `round ${i}: retry ${retry.status} ${retry.text}`)
    assert.equal(retry.headers["idempotent-replayed"], "true", `round ${i}: the retry after kill -9 is a replay`)
    // The stored response is what the client would have read the first time.
    let sent = null
    try {
      sent = JSON.parse(first.text)
    } catch {
      // the kill may have cut the first body short; the id check below still holds
    }
    if (sent) assert.equal(retry.text, first.text, `round ${i}: the replay is the stored response`)
    ids.push(retry.json().id)

    const a = `crash-append-${i}`
    const appended = await postThenKill(srv, s, { round: i }, { ...auth, "Idempotency-Key": a })
    assert.equal(appended.status, 204, `round ${i}: append answered ${appended.status}`)
    await srv.kill9()
    await srv.restart()
    const again = await alice.post(s, { round: i }, key(a))
    assert.equal(again.status, 204, `round ${i}: append retry ${again.status} ${again.text}`)
    assert.equal(again.headers["idempotent-replayed"], "true", `round ${i}: the append retry is a replay`)
  }
  const items = await listAll(alice, "crash")
  assert.deepEqual(
    items.map((d) => d.id).sort(),
    [...ids].sort(),
    "one document per round, none more",
  )
  const read = await alice.get(`${s}?offset=-1`)
  assert.deepEqual(
    JSON.parse(read.text),
    Array.from({ length: rounds }, (_, i) => ({ round: i })),
    "one message per round, none more",
  )
  const { events } = await readEvents(alice)
  assert.equal(events.filter((e) => e.type === "document.created").length, rounds, JSON.stringify(events))
})

test("idempotency - with --idempotency-ttl 1 an expired key is a fresh request", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--idempotency-ttl", "1"])
  const alice = client(srv, userToken("alice", SECRET))
  const first = await alice.post("/v1/documents/ttl", { v: 1 }, key("short-lived"))
  const d1 = expectStatus(first, 201)
  assertReplay(await alice.post("/v1/documents/ttl", { v: 1 }, key("short-lived")), first, "replay within the TTL")
  await sleep(2500)
  const later = await alice.post("/v1/documents/ttl", { v: 1 }, key("short-lived"))
  const d2 = expectStatus(later, 201, "after the TTL")
  assert.equal(later.headers["idempotent-replayed"], undefined, "after the TTL the request is new")
  assert.notEqual(d2.id, d1.id)
  // And a different body after expiry is not a reuse.
  const p = await alice.post("/v1/documents/ttl", { v: 2 }, key("other-key"))
  expectStatus(p, 201)
  // (replayed first, so that a worker keeps a copy of the record: the copy
  // expires with it)
  for (let i = 0; i < 3; i++) assertReplay(await alice.post("/v1/documents/ttl", { v: 2 }, key("other-key")), p, `replay ${i}`)
  await sleep(2500)
  expectStatus(await alice.post("/v1/documents/ttl", { v: 3 }, key("other-key")), 201, "another body after the TTL")
  assert.equal((await listAll(alice, "ttl")).length, 4)
  // A message POST (answered before its body is parsed) the same way.
  const conv = expectStatus(await alice.post("/v1/conversations", { title: "ttl" }), 201)
  const path = `/v1/conversations/${conv.id}/messages`
  const m1 = await alice.post(path, { role: "user", content: "one" }, key("msg-ttl"))
  expectStatus(m1, 201)
  for (let i = 0; i < 3; i++) assertReplay(await alice.post(path, { role: "user", content: "one" }, key("msg-ttl")), m1, `message replay ${i}`)
  await sleep(2500)
  const m2 = await alice.post(path, { role: "user", content: "two" }, key("msg-ttl"))
  assert.equal(expectStatus(m2, 201, "another body after the TTL").seq, 2)
  assert.equal(m2.headers["idempotent-replayed"], undefined)
})

// Records stored before outcomes were recorded hold the rendered reply
// ("<status>\n<content type>\n<headers length>\n<headers><body>"). These two
// were made by that release (local mode, owner @local): a conversation
// created and a producer's stream append, each with a key. A database that
// holds them must still answer their retries with them, byte for byte.
const LEGACY_RECORDS = [
  {
    key: "legacy-key-1",
    fingerprint: "858a719945281ba2d67770dc0a67f1764d8cd723710f0cb46c2da786aaa8f9b2",
    response:
      "3230310A6170706C69636174696F6E2F6A736F6E0A36310A455461673A202231220A4C6F636174696F6E3A202F76312F636F6E766572736174696F6E732F524F7A325F4C5A7234717972356876315A52737643770A7B22637265617465645F6174223A22323032362D31312D33305431323A31333A32372E3039365A222C226964223A22524F7A325F4C5A7234717972356876315A5273764377222C226C6173745F6D6573736167655F6174223A6E756C6C2C226D6573736167655F636F756E74223A302C226D65746164617461223A7B226E223A302E317D2C226F776E6572223A22406C6F63616C222C227469746C65223A224B6570742066726F6D206265666F7265222C22757064617465645F6174223A22323032362D31312D33305431323A31333A32372E3039365A222C2276657273696F6E223A317D",
  },
  {
    key: "legacy-key-2",
    fingerprint: "b6b86a93cc80d763306d861288d01d8b89c2eec188018c80e445846a5769158a",
    response:
      "3230300A0A38380A53747265616D2D4E6578742D4F66667365743A20303030303030303030303030303030305F303030303030303030303030303030350A50726F64756365722D45706F63683A20300A50726F64756365722D5365713A20300A",
  },
]

test("idempotency - records stored as rendered replies by the earlier release still replay byte for byte", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  expectStatus(await fetchRaw(srv, "GET", "/v1/conversations"), 200, "the server answers")
  assert.equal(await srv.stop(), 0)
  const now = Date.now()
  for (const r of LEGACY_RECORDS) {
    const res = srv.pgUrl
      ? spawnSync("psql", [srv.pgUrl, "-v", "ON_ERROR_STOP=1", "-qAtc",
          `INSERT INTO idempotency (owner, key, fingerprint, created_ms, response) VALUES ` +
          `('@local', '${r.key}', '${r.fingerprint}', ${now}, decode('${r.response}', 'hex'))`], { encoding: "utf8" })
      : spawnSync("sqlite3", [`${srv.dataDir}/parley.db`,
          `INSERT INTO idempotency (owner, key, fingerprint, created_ms, response) VALUES ` +
          `('@local', '${r.key}', '${r.fingerprint}', ${now}, X'${r.response}')`], { encoding: "utf8" })
    assert.equal(res.status, 0, `inserting ${r.key}: ${res.stderr || res.error}`)
  }
  await srv.restart()

  const conv = await fetchRaw(srv, "POST", "/v1/conversations", '{"title":"Kept from before","metadata":{"n":0.1}}', {
    "Content-Type": "application/json",
    "Idempotency-Key": "legacy-key-1",
  })
  assert.equal(conv.status, 201, conv.text)
  assert.equal(conv.headers["idempotent-replayed"], "true")
  assert.equal(conv.headers.etag, '"1"')
  assert.equal(conv.headers.location, "/v1/conversations/ROz2_LZr4qyr5hv1ZRsvCw")
  assert.equal(conv.headers["content-type"], "application/json")
  assert.equal(conv.text, Buffer.from(LEGACY_RECORDS[0].response, "hex").toString("utf8").split("\n").slice(5).join("\n"))
  // The record answered: nothing was created.
  assert.deepEqual(JSON.parse((await fetchRaw(srv, "GET", "/v1/conversations")).text).items, [])

  const append = await fetchRaw(srv, "POST", "/v1/stream/legacy/s", "hello", {
    "Content-Type": "text/plain",
    "Idempotency-Key": "legacy-key-2",
    "Producer-Id": "p",
    "Producer-Epoch": "0",
    "Producer-Seq": "0",
  })
  assert.equal(append.status, 200, append.text)
  assert.equal(append.headers["idempotent-replayed"], "true")
  assert.equal(append.headers["stream-next-offset"], "0000000000000000_0000000000000005")
  assert.equal(append.headers["producer-epoch"], "0")
  assert.equal(append.headers["producer-seq"], "0")
  assert.equal(append.text, "")
  // And the same key with another body is still a reuse.
  expectError(await fetchRaw(srv, "POST", "/v1/stream/legacy/s", "other", {
    "Content-Type": "text/plain",
    "Idempotency-Key": "legacy-key-2",
  }), 422, "idempotency_key_reused")
})

/** One request with a raw body: { status, headers, body, text, json() }. */
function fetchRaw(srv, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(srv.url + path)
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method, headers }, (res) => {
      const chunks = []
      res.on("data", (c) => chunks.push(c))
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8")
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), text, json: () => JSON.parse(text) })
      })
    })
    req.on("error", reject)
    if (body !== undefined) req.end(body)
    else req.end()
  })
}
