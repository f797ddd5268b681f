// Snapshot visits, cheap polling and light lists: view_count and
// last_viewed_at on a snapshot (its owner's eyes only), the visit write
// limited per viewer and kept off the read's path; ETag/304 on a session
// and on a conversation's latest session; ?fields= and ?view=summary on the
// lists that carry bodies; and --max-json-bytes bounding the content (a
// document's data, a message's content), not the envelope around it.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import path from "node:path"
import { test } from "node:test"

import { client, expectError, expectStatus, sleep, userToken } from "./lib/api.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-visits-1"
const SECRET = "test-jwt-secret-visits-1"
const MAX_JSON = 1572864 // 1.5 MiB, the default --max-json-bytes

async function setup(t, extra = []) {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET, "--rate-limit-writes", "off", "--rate-limit-reads", "off", ...extra] })
  return {
    srv,
    alice: client(srv, userToken("alice", SECRET)),
    bob: client(srv, userToken("bob", SECRET)),
    worker: client(srv, ADMIN_KEY),
    anon: client(srv, null),
  }
}

const JSON_CT = { "Content-Type": "application/json" }

async function newConversation(c, body = { title: "a chat" }) {
  return expectStatus(await c.post("/v1/conversations", body), 201, "POST /v1/conversations")
}

// ---------------------------------------------------------------------------
// The 1.5 MiB limit bounds the content, not the envelope

test("limits - a document's data of exactly --max-json-bytes is accepted in a larger body; one byte more is 413", { timeout: 60_000 }, async (t) => {
  const { alice } = await setup(t)
  // {"s":"xxx..."} is 8 bytes of canonical framing; sent pretty-printed,
  // the body is larger than the data it holds.
  const exactly = `{\n  "s" : "${"x".repeat(MAX_JSON - 8)}"\n}\n`
  assert.ok(Buffer.byteLength(exactly) > MAX_JSON)
  const d = expectStatus(await alice.call("PUT", "/v1/documents/big/exact", { body: exactly, headers: JSON_CT }), 201, "data of exactly the limit")
  assert.equal(d.data.s.length, MAX_JSON - 8)
  const over = `{\n  "s" : "${"x".repeat(MAX_JSON - 7)}"\n}\n`
  for (const [method, p] of [["PUT", "/v1/documents/big/over"], ["POST", "/v1/documents/big"]]) {
    const err = expectError(await alice.call(method, p, { body: over, headers: JSON_CT }), 413, "payload_too_large", `${method}: one byte over`)
    assert.equal(err.details.limit_bytes, MAX_JSON)
    assert.equal(err.details.field, "data")
    assert.match(err.message, /1572864/)
  }
  expectError(await alice.get("/v1/documents/big/over"), 404, "not_found", "nothing stored")
  // Far over the limit and its envelope: refused before the body is read.
  const huge = `{"s":"${"x".repeat(MAX_JSON + 70_000)}"}`
  const big = await alice.call("PUT", "/v1/documents/big/huge", { body: huge, headers: JSON_CT }).catch(() => ({ status: 0 }))
  if (big.status !== 0) assert.equal(expectError(big, 413, "payload_too_large").details.limit_bytes, MAX_JSON + 65536)
})

test("limits - a message's content of exactly --max-json-bytes is accepted; one byte more is 413", { timeout: 60_000 }, async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  // A string's canonical JSON is its characters and two quotes.
  const exact = "y".repeat(MAX_JSON - 2)
  const m = expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: exact, metadata: { k: "v" }, process: true }), 201, "content of exactly the limit")
  assert.equal(m.content.length, MAX_JSON - 2)
  const err = expectError(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: `${exact}y` }), 413, "payload_too_large", "one byte over")
  assert.equal(err.details.limit_bytes, MAX_JSON)
  assert.equal(err.details.size_bytes, MAX_JSON + 1)
  assert.equal(err.details.field, "content")
  // An assistant's reply (complete) is a message too.
  const s = expectStatus(await worker.post("/v1/sessions/claim", { conversation_id: conv.id }), 200, "claim")
  const cerr = expectError(await worker.post(`/v1/sessions/${s.id}/complete`, { content: `${exact}z` }), 413, "payload_too_large", "complete one byte over")
  assert.equal(cerr.details.field, "content")
  expectStatus(await worker.post(`/v1/sessions/${s.id}/complete`, { content: exact, metadata: { model: "m" } }), 200, "complete at the limit")
  const page = expectStatus(await alice.get(`/v1/conversations/${conv.id}/messages?after=0`), 200)
  assert.deepEqual(page.items.map((x) => x.content.length), [MAX_JSON - 2, MAX_JSON - 2], "two messages, nothing of the refused ones")
})

// ---------------------------------------------------------------------------
// ETag and 304 on a session and on a conversation's latest session

test("polling - GET /v1/sessions/{id} and sessions/latest carry an ETag; If-None-Match answers 304 (RFC 9110)", { timeout: 60_000 }, async (t) => {
  const { alice, bob, worker } = await setup(t)
  const conv = await newConversation(alice)
  const m = expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "hi", process: true }), 201)
  const sid = m.session_id
  for (const p of [`/v1/sessions/${sid}`, `/v1/conversations/${conv.id}/sessions/latest`]) {
    const first = await alice.get(p)
    const s = expectStatus(first, 200, p)
    assert.equal(s.id, sid)
    const tag = first.headers.etag
    assert.match(tag ?? "", /^"[A-Za-z0-9_-]{22}"$/, `${p}: a strong ETag`)
    assert.match(first.headers["cache-control"], /no-cache/)
    // Unchanged: 304 without a body, with the same ETag.
    for (const inm of [tag, `W/${tag}`, `"nope", ${tag}`, `"a",W/${tag} , "b"`, "*"]) {
      const res = await alice.get(p, { headers: { "If-None-Match": inm } })
      assert.equal(res.status, 304, `${p} If-None-Match: ${inm}`)
      assert.equal(res.body.length, 0)
      assert.equal(res.headers.etag, tag)
    }
    // Another tag, or a malformed one: the full answer.
    for (const inm of ['"nope"', 'W/"nope"', tag.slice(1, -1), '""']) {
      const res = await alice.get(p, { headers: { "If-None-Match": inm } })
      assert.equal(res.status, 200, `${p} If-None-Match: ${inm}`)
      assert.deepEqual(res.json(), s)
    }
    // Another user's session: 404 whatever the precondition.
    for (const inm of [tag, "*"]) expectError(await bob.get(p, { headers: { "If-None-Match": inm } }), 404, "not_found", `bob ${p}`)
  }
  // Every change is a new tag: claim, heartbeat (a new lease), await, input, complete.
  const tags = new Set()
  const tagOf = async (p) => {
    const res = await alice.get(p)
    expectStatus(res, 200)
    return res.headers.etag
  }
  const p = `/v1/sessions/${sid}`
  const lp = `/v1/conversations/${conv.id}/sessions/latest`
  tags.add(await tagOf(p))
  const steps = [
    () => worker.post("/v1/sessions/claim", { conversation_id: conv.id, lease_seconds: 60 }),
    () => worker.post(`/v1/sessions/${sid}/heartbeat`, { lease_seconds: 120 }),
    () => worker.post(`/v1/sessions/${sid}/await`, { request: { tool: "x" } }),
    () => alice.post(`/v1/sessions/${sid}/input`, { data: { ok: true } }),
    () => worker.post(`/v1/sessions/${sid}/complete`, { content: "done" }),
  ]
  for (const step of steps) {
    const before = await tagOf(p)
    expectStatus(await step(), 200)
    const res = await alice.get(p, { headers: { "If-None-Match": before } })
    assert.equal(res.status, 200, "a changed session is sent again")
    assert.notEqual(res.headers.etag, before)
    assert.equal(await tagOf(lp), res.headers.etag, "latest and the session agree on the tag")
    tags.add(res.headers.etag)
  }
  assert.equal(tags.size, steps.length + 1, "a new tag per change")
  // A new turn makes another session the latest: its tag differs.
  const old = await tagOf(lp)
  expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "again", process: true }), 201)
  const res = await alice.get(lp, { headers: { "If-None-Match": old } })
  assert.equal(res.status, 200)
  assert.notEqual(res.json().id, sid)
})

// ---------------------------------------------------------------------------
// Snapshot visits

/** Run SQL on the server's store (sqlite3, or psql on PostgreSQL): its output lines. */
function storeSql(srv, sql) {
  const r = srv.pgUrl
    ? spawnSync("psql", [srv.pgUrl, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8", timeout: 30_000 })
    : spawnSync("sqlite3", [path.join(srv.dataDir, "parley.db"), sql], { encoding: "utf8", timeout: 30_000 })
  assert.equal(r.status, 0, `${sql}: ${r.stderr}`)
  return r.stdout.trim()
}

/** Read snapshot id as c until its view_count is want (visits are written after the read). */
async function waitViews(c, id, want, what) {
  let snap
  for (let i = 0; i < 100; i++) {
    snap = expectStatus(await c.get(`/v1/snapshots/${id}`), 200, what)
    if (snap.view_count === want) return snap
    await sleep(50)
  }
  assert.fail(`${what}: view_count ${snap.view_count}, expected ${want}`)
}

async function publicSnapshot(alice, publicSnap = true) {
  const conv = await newConversation(alice, { title: "shared" })
  expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "hello" }), 201)
  return expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}`, public: publicSnap }), 201)
}

const UA = (ua) => ({ headers: { "User-Agent": ua } })

test("visits - view_count and last_viewed_at: its owner sees them, a visitor never does", { timeout: 60_000 }, async (t) => {
  const { srv, alice, bob, worker, anon } = await setup(t)
  const snap = await publicSnapshot(alice)
  // A new snapshot: no visit yet. The owner's own reads are not visits.
  let own = expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200)
  assert.equal(own.view_count, 0)
  assert.equal(own.last_viewed_at, null)
  for (let i = 0; i < 3; i++) expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200)
  // An anonymous viewer (address + User-Agent) counts once, however often it reads.
  for (let i = 0; i < 5; i++) {
    const seen = expectStatus(await anon.get(`/v1/snapshots/${snap.id}`, UA("browser-1")), 200)
    assert.ok(!("view_count" in seen) && !("last_viewed_at" in seen), "a visitor never sees the visits")
    assert.equal(seen.content.messages.length, 1)
  }
  own = await waitViews(alice, snap.id, 1, "one anonymous viewer")
  assert.match(own.last_viewed_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
  // Another User-Agent at the same address is another viewer; a user with a token is one viewer.
  expectStatus(await anon.get(`/v1/snapshots/${snap.id}`, UA("browser-2")), 200)
  await waitViews(alice, snap.id, 2, "a second anonymous viewer")
  for (let i = 0; i < 3; i++) {
    const seen = expectStatus(await bob.get(`/v1/snapshots/${snap.id}`, UA(`any-${i}`)), 200)
    assert.ok(!("view_count" in seen), "another user never sees the visits")
  }
  own = await waitViews(alice, snap.id, 3, "bob")
  await sleep(300)
  assert.equal(expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200).view_count, 3, "nothing more was counted")
  // The admin sees them too; the owner's list shows them.
  assert.equal(expectStatus(await worker.get(`/v1/snapshots/${snap.id}`), 200).view_count, 3)
  const list = expectStatus(await alice.get("/v1/snapshots"), 200)
  assert.equal(list.items.length, 1)
  assert.equal(list.items[0].view_count, 3)
  assert.equal(list.items[0].last_viewed_at, own.last_viewed_at)
  assert.deepEqual(expectStatus(await bob.get("/v1/snapshots"), 200).items, [], "bob lists none of alice's")
  // The message pages of a snapshot are not visits.
  expectStatus(await anon.get(`/v1/snapshots/${snap.id}/messages`, UA("pager")), 200)
  await sleep(300)
  assert.equal(expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200).view_count, 3)
  // A private snapshot: another user's read is 404 and is no visit.
  const priv = await publicSnapshot(alice, false)
  expectError(await bob.get(`/v1/snapshots/${priv.id}`), 404, "not_found")
  expectError(await anon.get(`/v1/snapshots/${priv.id}`), 404, "not_found")
  expectError(await bob.del(`/v1/snapshots/${snap.id}`), 404, "not_found")
  await sleep(300)
  assert.equal(expectStatus(await alice.get(`/v1/snapshots/${priv.id}`), 200).view_count, 0)
  assert.ok(srv.url)
})

test("visits - a viewer counts once per --snapshot-visit-interval", { timeout: 60_000 }, async (t) => {
  const { alice, bob } = await setup(t, ["--snapshot-visit-interval", "1s"])
  const snap = await publicSnapshot(alice)
  expectStatus(await bob.get(`/v1/snapshots/${snap.id}`), 200)
  await waitViews(alice, snap.id, 1, "first read")
  for (let i = 0; i < 5; i++) expectStatus(await bob.get(`/v1/snapshots/${snap.id}`), 200)
  await sleep(200)
  assert.equal(expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200).view_count, 1, "within the interval")
  await sleep(1100)
  expectStatus(await bob.get(`/v1/snapshots/${snap.id}`), 200)
  const own = await waitViews(alice, snap.id, 2, "after the interval")
  assert.ok(own.last_viewed_at)
})

test("visits - --snapshot-visit-interval off counts nothing (PARLEY_SNAPSHOT_VISIT_INTERVAL too)", { timeout: 60_000 }, async (t) => {
  for (const how of [{ args: ["--snapshot-visit-interval", "off"] }, { env: { PARLEY_SNAPSHOT_VISIT_INTERVAL: "0" } }]) {
    const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET, ...(how.args ?? [])], env: how.env })
    const alice = client(srv, userToken("alice", SECRET))
    const snap = await publicSnapshot(alice)
    for (const ua of ["a", "b", "c"]) expectStatus(await client(srv, null).get(`/v1/snapshots/${snap.id}`, UA(ua)), 200)
    await sleep(300)
    const own = expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200)
    assert.equal(own.view_count, 0)
    assert.equal(own.last_viewed_at, null)
    await srv.stop()
  }
})

test("visits - deleting a snapshot marks its visit record deleted", { timeout: 60_000 }, async (t) => {
  const { srv, alice, anon } = await setup(t)
  const snap = await publicSnapshot(alice)
  const other = await publicSnapshot(alice)
  expectStatus(await anon.get(`/v1/snapshots/${snap.id}`, UA("x")), 200)
  expectStatus(await anon.get(`/v1/snapshots/${other.id}`, UA("x")), 200)
  await waitViews(alice, snap.id, 1, "before the delete")
  await waitViews(alice, other.id, 1, "the other")
  const deleted = (id) => storeSql(srv, `SELECT view_count || ':' || CASE WHEN deleted THEN 'deleted' ELSE 'live' END FROM snapshot_visits WHERE snapshot_id = '${id}'`)
  assert.equal(deleted(snap.id), "1:live")
  expectStatus(await alice.del(`/v1/snapshots/${snap.id}`), 204)
  assert.equal(deleted(snap.id), "1:deleted", "the record is kept, marked deleted")
  assert.equal(deleted(other.id), "1:live", "another snapshot's record is untouched")
  expectError(await anon.get(`/v1/snapshots/${snap.id}`, UA("y")), 404, "not_found")
  await sleep(300)
  assert.equal(deleted(snap.id), "1:deleted", "no visit of a deleted snapshot")
})

// ---------------------------------------------------------------------------
// Light lists: ?fields= and ?view=summary

const DOC_FIELDS = ["checksum", "collection", "created_at", "data", "id", "updated_at", "version"]
const CONV_FIELDS = ["created_at", "id", "last_message_at", "message_count", "metadata", "owner", "title", "updated_at", "version"]

test("light lists - documents without their data: ?view=summary, ?fields=; 20 documents of 1.5 MB list in a few KB", { timeout: 120_000 }, async (t) => {
  const { alice, bob } = await setup(t)
  const big = "w".repeat(1_500_000)
  for (let i = 0; i < 20; i++) expectStatus(await alice.put(`/v1/documents/workbench/s${i}`, { i, blob: big }), 201)
  // 30 MB to build and send: a request timeout to match (on PostgreSQL, on
  // a loaded machine, the answer took more than the default 15 s to start).
  const full = await alice.get("/v1/documents/workbench?limit=20", { timeoutMs: 60_000 })
  const fullBody = expectStatus(full, 200)
  assert.equal(fullBody.items.length, 20)
  assert.deepEqual(Object.keys(fullBody.items[0]).sort(), DOC_FIELDS)
  const summary = await alice.get("/v1/documents/workbench?limit=20&view=summary")
  const sum = expectStatus(summary, 200)
  assert.deepEqual(Object.keys(sum.items[0]).sort(), DOC_FIELDS.filter((f) => f !== "data"))
  assert.deepEqual(sum.items.map((d) => d.id), fullBody.items.map((d) => d.id), "the same documents, in the same order")
  assert.deepEqual(sum.items.map((d) => d.version), fullBody.items.map((d) => d.version))
  assert.ok(full.body.length > 28_000_000, `full list: ${full.body.length} bytes`)
  assert.ok(summary.body.length < 8_000, `summary: ${summary.body.length} bytes`)
  // ?view=full is the default; ?fields= picks fields (id always comes).
  assert.deepEqual(Object.keys(expectStatus(await alice.get("/v1/documents/workbench?limit=1&view=full"), 200).items[0]).sort(), DOC_FIELDS)
  const picked = expectStatus(await alice.get("/v1/documents/workbench?limit=3&fields=version,updated_at"), 200)
  assert.deepEqual(Object.keys(picked.items[0]).sort(), ["id", "updated_at", "version"])
  assert.ok(picked.next_cursor, "paging still works")
  const next = expectStatus(await alice.get(`/v1/documents/workbench?limit=3&fields=version&cursor=${picked.next_cursor}`), 200)
  assert.deepEqual(next.items.map((d) => d.id), fullBody.items.slice(3, 6).map((d) => d.id))
  const withData = expectStatus(await alice.get("/v1/documents/workbench?limit=1&fields=id,data"), 200)
  assert.deepEqual(Object.keys(withData.items[0]).sort(), ["data", "id"])
  assert.equal(withData.items[0].data.blob.length, 1_500_000)
  // Ownership: bob's list of the same collection is his own (empty).
  assert.deepEqual(expectStatus(await bob.get("/v1/documents/workbench?view=summary"), 200).items, [])
})

test("light lists - conversations and sessions without their bodies", { timeout: 60_000 }, async (t) => {
  const { alice, bob, worker } = await setup(t)
  const conv = await newConversation(alice, { title: "t", metadata: { notes: "m".repeat(100_000) } })
  const sum = expectStatus(await alice.get("/v1/conversations?view=summary"), 200)
  assert.deepEqual(Object.keys(sum.items[0]).sort(), CONV_FIELDS.filter((f) => f !== "metadata"))
  assert.equal(sum.items[0].id, conv.id)
  const full = expectStatus(await alice.get("/v1/conversations"), 200)
  assert.deepEqual(Object.keys(full.items[0]).sort(), CONV_FIELDS)
  const picked = expectStatus(await alice.get("/v1/conversations?fields=title,message_count"), 200)
  assert.deepEqual(picked.items, [{ id: conv.id, title: "t", message_count: 0 }])
  assert.deepEqual(expectStatus(await bob.get("/v1/conversations?view=summary"), 200).items, [], "bob sees none of alice's")

  // Sessions: the summary drops error, request and input.
  const m = expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "q", process: true }), 201)
  expectStatus(await worker.post("/v1/sessions/claim", { conversation_id: conv.id }), 200)
  expectStatus(await worker.post(`/v1/sessions/${m.session_id}/await`, { request: { big: "r".repeat(100_000) } }), 200)
  const sessions = expectStatus(await alice.get(`/v1/conversations/${conv.id}/sessions?view=summary`), 200)
  assert.equal(sessions.items[0].id, m.session_id)
  for (const f of ["error", "request", "input"]) assert.ok(!(f in sessions.items[0]), `summary has no ${f}`)
  assert.equal(sessions.items[0].status, "awaiting_input")
  const sp = expectStatus(await alice.get(`/v1/conversations/${conv.id}/sessions?fields=status,request`), 200)
  assert.deepEqual(Object.keys(sp.items[0]).sort(), ["id", "request", "status"])
  assert.equal(sp.items[0].request.big.length, 100_000)
  expectError(await bob.get(`/v1/conversations/${conv.id}/sessions?view=summary`), 404, "not_found")
})

test("light lists - an unknown field, an empty list of fields, a bad view or both parameters are 400 invalid_fields", { timeout: 30_000 }, async (t) => {
  const { alice } = await setup(t)
  const conv = await newConversation(alice)
  for (const base of ["/v1/documents/workbench", "/v1/conversations", `/v1/conversations/${conv.id}/sessions`]) {
    const err = expectError(await alice.get(`${base}?fields=id,bogus`), 400, "invalid_fields", `${base} unknown`)
    assert.equal(err.details.field, "bogus")
    assert.ok(Array.isArray(err.details.allowed) && err.details.allowed.includes("id"))
    for (const q of ["fields=", "fields=id,,version", "fields=ID", "view=light", "view=summary&fields=id", "fields=id&fields=id", "view=full&view=full"]) {
      expectError(await alice.get(`${base}?${q}`), 400, "invalid_fields", `${base}?${q}`)
    }
  }
})
