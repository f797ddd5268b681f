// Moving one user's data to another: POST /v1/users/{from}/transfer
// {"to": …} with the admin key. Everything an anonymous user made follows
// them into their account in one transaction — conversations with their
// messages, sessions with their token streams, snapshots, documents,
// streams, idempotency records — with a user.transferred event in both
// feeds; the old user keeps nothing it could see. Idempotent; refuses the
// same user, a user token and the admin acting as a user; the documents
// policy on collisions. Runs on SQLite and, under tests/lib/with-pg, on
// PostgreSQL.
import assert from "node:assert/strict"
import { test } from "node:test"

import { client, expectError, expectStatus, readEvents, userToken } from "./lib/api.mjs"
import { offsetAt, request } from "./lib/http.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-transfer-1"
const SECRET = "test-jwt-secret-transfer-1"

async function setup(t) {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET] })
  return {
    srv,
    anon: client(srv, userToken("anon-42", SECRET)),
    alice: client(srv, userToken("alice", SECRET)),
    admin: client(srv, ADMIN_KEY),
  }
}

const transfer = (admin, from, to, opts) => admin.post(`/v1/users/${encodeURIComponent(from)}/transfer`, { to }, opts)

/** What the anonymous user does before signing in. */
async function populate(srv, anon) {
  const conv = expectStatus(await anon.post("/v1/conversations", { title: "anonymous chat" }), 201)
  const m1 = expectStatus(await anon.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "where is the albatross" }, { headers: { "Idempotency-Key": "k-1" } }), 201)
  const m2 = expectStatus(await anon.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "and the pelican?", process: true }), 201)
  const doc = expectStatus(await anon.put("/v1/documents/settings/prefs", { theme: "dark" }), 201)
  expectStatus(await anon.put("/v1/documents/notes/n1", { text: "anon note" }), 201)
  const snap = expectStatus(await anon.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  const h = { Authorization: `Bearer ${anon.token}`, "Content-Type": "application/json" }
  assert.equal((await request(srv.url, "/v1/stream/u/anon-42/drafts", { method: "PUT", headers: h })).status, 201)
  assert.equal((await request(srv.url, "/v1/stream/u/anon-42/drafts", { method: "POST", headers: h, body: '[{"d":1}]' })).status, 204)
  return { conv, m1, m2, session: m2.session, doc, snap }
}

test("transfer - everything the anonymous user made follows them; the old user sees nothing of it", async (t) => {
  const { srv, anon, alice, admin } = await setup(t)
  const mine = expectStatus(await alice.post("/v1/conversations", { title: "alice's own" }), 201)
  const made = await populate(srv, anon)
  const before = await readEvents(anon)
  assert.ok(before.events.length >= 6)
  // Retried before the move: the workers keep copies of the record, which
  // the move must drop (the old user's retry below is 404, not a replay).
  for (let i = 0; i < 4; i++) {
    const again = await anon.post(`/v1/conversations/${made.conv.id}/messages`, { role: "user", content: "where is the albatross" }, { headers: { "Idempotency-Key": "k-1" } })
    assert.equal(again.headers["idempotent-replayed"], "true", again.text)
  }

  const ans = expectStatus(await transfer(admin, "anon-42", "alice"), 200)
  assert.equal(ans.from, "anon-42")
  assert.equal(ans.to, "alice")
  assert.deepEqual(ans.moved, { conversations: 1, sessions: 1, snapshots: 1, streams: 4, documents: 2, idempotency_keys: 1, blobs: 0, blob_refs: 0 })
  assert.deepEqual(Object.values(ans.dropped), [0, 0, 0, 0, 0, 0, 0, 0])

  // The new owner has it all.
  const convs = expectStatus(await alice.get("/v1/conversations"), 200).items
  assert.deepEqual(convs.map((c) => c.id).sort(), [made.conv.id, mine.id].sort())
  const conv = expectStatus(await alice.get(`/v1/conversations/${made.conv.id}`), 200)
  assert.equal(conv.owner, "alice")
  const msgs = expectStatus(await alice.get(`/v1/conversations/${made.conv.id}/messages`), 200).items
  assert.deepEqual(msgs.map((m) => m.content), ["where is the albatross", "and the pelican?"])
  assert.equal(expectStatus(await alice.get(`/v1/sessions/${made.session.id}`), 200).status, "pending")
  assert.equal(expectStatus(await alice.get(`/v1/conversations/${made.conv.id}/sessions/latest`), 200).id, made.session.id)
  assert.equal(expectStatus(await alice.get("/v1/documents/settings/prefs"), 200).data.theme, "dark")
  assert.equal(expectStatus(await alice.get(`/v1/snapshots/${made.snap.id}`), 200).id, made.snap.id)
  assert.deepEqual(expectStatus(await alice.get("/v1/snapshots"), 200).items.map((s) => s.id), [made.snap.id])
  const rd = await request(srv.url, "/v1/stream/u/anon-42/drafts?offset=-1", { headers: { Authorization: `Bearer ${alice.token}` } })
  assert.equal(rd.status, 200)
  assert.deepEqual(rd.json(), [{ d: 1 }])
  assert.equal(expectStatus(await alice.get("/v1/search?q=albatross"), 200).items.length, 1, "search follows the conversation")
  assert.equal(expectStatus(await alice.get("/v1/search?q=anonymous"), 200).items[0].kind, "title")
  // Posting goes on in the moved conversation, as alice.
  expectStatus(await alice.post(`/v1/conversations/${made.conv.id}/messages`, { role: "user", content: "signed in now" }), 201)
  // An Idempotency-Key the anonymous user used answers alice's retry.
  const retry = await alice.post(`/v1/conversations/${made.conv.id}/messages`, { role: "user", content: "where is the albatross" }, { headers: { "Idempotency-Key": "k-1" } })
  assert.equal(retry.status, 201)
  assert.equal(retry.headers["idempotent-replayed"], "true")
  assert.equal(retry.json().id, made.m1.id)

  // The old user: nothing left, every id is 404.
  assert.deepEqual(expectStatus(await anon.get("/v1/conversations"), 200).items, [])
  expectError(await anon.get(`/v1/conversations/${made.conv.id}`), 404, "not_found")
  expectError(await anon.get(`/v1/conversations/${made.conv.id}/messages`), 404, "not_found")
  expectError(await anon.get(`/v1/sessions/${made.session.id}`), 404, "not_found")
  expectError(await anon.get("/v1/documents/settings/prefs"), 404, "not_found")
  assert.deepEqual(expectStatus(await anon.get("/v1/documents/settings"), 200).items, [])
  assert.deepEqual(expectStatus(await anon.get("/v1/snapshots"), 200).items, [])
  expectError(await anon.get(`/v1/snapshots/${made.snap.id}`), 404, "not_found")
  assert.equal((await request(srv.url, "/v1/stream/u/anon-42/drafts?offset=-1", { headers: { Authorization: `Bearer ${anon.token}` } })).status, 404)
  assert.equal((await request(srv.url, "/v1/stream/u/anon-42/drafts", { method: "PUT", headers: { Authorization: `Bearer ${anon.token}`, "Content-Type": "application/json" } })).status, 409, "the path is alice's now")
  assert.deepEqual(expectStatus(await anon.get("/v1/search?q=albatross"), 200).items, [])
  const replay = await anon.post(`/v1/conversations/${made.conv.id}/messages`, { role: "user", content: "where is the albatross" }, { headers: { "Idempotency-Key": "k-1" } })
  expectError(replay, 404, "not_found", "the old user's key no longer answers with the moved data")

  // Events: the old feed keeps only the transfer; the new one gets it too.
  const old = await readEvents(anon)
  assert.deepEqual(old.events.map((e) => e.type), ["user.transferred"])
  assert.equal(old.events[0].from, "anon-42")
  assert.equal(old.events[0].to, "alice")
  assert.deepEqual(old.events[0].data.moved, ans.moved)
  // A read from an offset before the transfer is 410, as after retention.
  const gone = await anon.get(`/v1/events?offset=${offsetAt(1)}`)
  assert.equal(gone.status, 410, `an offset of the trimmed history: ${gone.status} ${gone.text}`)
  const now = (await readEvents(alice)).events
  const tr = now.filter((e) => e.type === "user.transferred")
  assert.equal(tr.length, 1)
  assert.deepEqual(tr[0].data, ans)
  assert.ok(now.some((e) => e.type === "conversation.created"), "alice's own feed keeps its history")
  const all = (await readEvents(admin)).events.filter((e) => e.type === "user.transferred")
  assert.equal(all.length, 2, "the feed of all has both users' events")
})

test("transfer - idempotent: a second call changes nothing and answers the same; later data moves on the next call", async (t) => {
  const { srv, anon, alice, admin } = await setup(t)
  await populate(srv, anon)
  const first = await transfer(admin, "anon-42", "alice")
  const a1 = expectStatus(first, 200)
  const feedBefore = (await readEvents(alice)).events.length
  const convsBefore = expectStatus(await alice.get("/v1/conversations"), 200)
  const second = await transfer(admin, "anon-42", "alice")
  assert.equal(second.status, 200)
  assert.equal(second.text, first.text, "byte for byte the same answer")
  assert.equal((await readEvents(alice)).events.length, feedBefore, "no new event")
  assert.deepEqual(expectStatus(await alice.get("/v1/conversations"), 200), convsBefore)
  assert.deepEqual((await readEvents(anon)).events.map((e) => e.type), ["user.transferred"])
  // The old token keeps working as a fresh user; a later call moves the new data too.
  const later = expectStatus(await anon.post("/v1/conversations", { title: "after" }), 201)
  const a3 = expectStatus(await transfer(admin, "anon-42", "alice"), 200)
  assert.equal(a3.moved.conversations, a1.moved.conversations + 1, "the counts add up")
  assert.equal(expectStatus(await alice.get(`/v1/conversations/${later.id}`), 200).owner, "alice")
  const a4 = await transfer(admin, "anon-42", "alice")
  assert.deepEqual(a4.json(), a3)
  // A user who never made anything: zeros, the same again.
  const z1 = await transfer(admin, "nobody", "alice")
  assert.deepEqual(z1.json().moved, { conversations: 0, sessions: 0, snapshots: 0, streams: 0, documents: 0, idempotency_keys: 0, blobs: 0, blob_refs: 0 })
  assert.equal((await transfer(admin, "nobody", "alice")).text, z1.text)
})

test("transfer - documents whose ids collide: the destination's live document wins; its tombstone gives way", async (t) => {
  const { anon, alice, admin } = await setup(t)
  expectStatus(await anon.put("/v1/documents/settings/prefs", { theme: "dark" }), 201)
  expectStatus(await alice.put("/v1/documents/settings/prefs", { theme: "light" }), 201)
  // alice deleted notes/n1 after 3 versions; anon has a live notes/n1 at version 1.
  expectStatus(await alice.put("/v1/documents/notes/n1", { v: 1 }), 201)
  expectStatus(await alice.put("/v1/documents/notes/n1", { v: 2 }), 200)
  expectStatus(await alice.del("/v1/documents/notes/n1"), 204)
  expectStatus(await anon.put("/v1/documents/notes/n1", { text: "anon" }), 201)
  expectStatus(await anon.put("/v1/documents/notes/n2", { text: "only anon" }), 201)
  const ans = expectStatus(await transfer(admin, "anon-42", "alice"), 200)
  assert.equal(ans.moved.documents, 2)
  assert.equal(ans.dropped.documents, 1)
  assert.equal(expectStatus(await alice.get("/v1/documents/settings/prefs"), 200).data.theme, "light", "alice's own document is kept")
  const n1 = expectStatus(await alice.get("/v1/documents/notes/n1"), 200)
  assert.equal(n1.data.text, "anon", "the moved document replaces alice's tombstone")
  assert.ok(n1.version > 3, `its version continues above the tombstone's: ${n1.version}`)
  assert.equal(expectStatus(await alice.get("/v1/documents/notes/n2"), 200).data.text, "only anon")
  expectError(await anon.get("/v1/documents/settings/prefs"), 404, "not_found", "the dropped document is gone")
})

test("transfer - refusals: the same user, a user's token, the admin acting as a user, bad ids and bodies", async (t) => {
  const { srv, anon, alice, admin } = await setup(t)
  await populate(srv, anon)
  expectError(await transfer(admin, "anon-42", "anon-42"), 400, "same_user")
  expectError(await transfer(anon, "anon-42", "alice"), 403, "forbidden")
  expectError(await transfer(alice, "anon-42", "alice"), 403, "forbidden")
  expectError(await transfer(admin, "anon-42", "alice", { headers: { "Parley-User": "alice" } }), 403, "forbidden")
  expectError(await transfer(client(srv, null), "anon-42", "alice"), 401, "unauthorized")
  expectError(await transfer(admin, "anon-42", "@admin"), 400, "invalid_transfer")
  expectError(await transfer(admin, "@local", "alice"), 400, "invalid_user")
  expectError(await transfer(admin, "anon-42", "has space"), 400, "invalid_transfer")
  expectError(await transfer(admin, "anon-42", 7), 400, "invalid_transfer")
  expectError(await transfer(admin, "anon-42", "x".repeat(256)), 400, "invalid_transfer")
  expectError(await admin.post("/v1/users/anon-42/transfer", { to: "alice", also: 1 }), 400, "invalid_transfer")
  expectError(await admin.call("POST", "/v1/users/anon-42/transfer", { body: "not json" }), 400, "invalid_json")
  expectError(await admin.call("POST", "/v1/users/anon-42/transfer"), 400, "invalid_json")
  expectError(await admin.get("/v1/users/anon-42/transfer"), 405)
  expectError(await admin.post("/v1/users/anon-42", { to: "alice" }), 404, "not_found")
  expectError(await admin.post("/v1/users//transfer", { to: "alice" }), 404, "not_found")
  // Nothing moved by any of them.
  assert.equal(expectStatus(await anon.get("/v1/conversations"), 200).items.length, 1)
  assert.equal(expectStatus(await alice.get("/v1/conversations"), 200).items.length, 0)
  // A user id with a slash is whole.
  const slash = client(srv, userToken("org/anon", SECRET))
  expectStatus(await slash.post("/v1/conversations", { title: "slashed" }), 201)
  assert.equal(expectStatus(await admin.post("/v1/users/org/anon/transfer", { to: "alice" }), 200).moved.conversations, 1)
  assert.equal(expectStatus(await alice.get("/v1/conversations"), 200).items.length, 1)
})

test("transfer - blobs follow the user: the new owner downloads them, messages that reference them resolve, the old user gets 404; the same bytes at both keep the destination's", async (t) => {
  const { srv, anon, alice, admin } = await setup(t)
  const up = async (c, bytes) => expectStatus(await c.call("POST", "/v1/blobs", { body: bytes, headers: { "Content-Type": "application/octet-stream" } }), 201)
  const only = Buffer.alloc(300 * 1024, 7) // two parts
  const shared = Buffer.from("the same bytes for both")
  const a = await up(anon, only)
  const s1 = await up(anon, shared)
  const s2 = await up(alice, shared)
  assert.equal(s1.id, s2.id)
  const conv = expectStatus(await anon.post("/v1/conversations", { title: "with files" }), 201)
  const msg = expectStatus(await anon.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "blob", id: a.id }, { type: "blob", id: s1.id }] }), 201)

  const ans = expectStatus(await transfer(admin, "anon-42", "alice"), 200)
  assert.equal(ans.moved.blobs, 1, "the blob only anon had")
  assert.equal(ans.dropped.blobs, 1, "the copy alice had too")
  assert.equal(ans.moved.blob_refs, 2)
  for (const [id, bytes] of [[a.id, only], [s1.id, shared]]) {
    const got = await alice.get(`/v1/blobs/${id}`)
    assert.equal(got.status, 200, `alice downloads ${id}`)
    assert.ok(got.body.equals(bytes))
    expectError(await anon.get(`/v1/blobs/${id}`), 404, "not_found")
  }
  const range = await alice.get(`/v1/blobs/${a.id}`, { headers: { Range: "bytes=262140-262150" } })
  assert.equal(range.status, 206)
  const m = expectStatus(await alice.get(`/v1/conversations/${conv.id}/messages`), 200).items.find((x) => x.id === msg.id)
  assert.deepEqual(m.content.map((p) => p.id), [a.id, s1.id], "the message still names its blobs")
  // The references moved with it: deleting the message's conversation is what frees them, not the move.
  const snap = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  assert.equal((await alice.get(`/v1/snapshots/${snap.id}/blobs/${a.id}`)).status, 200, "a snapshot of the moved conversation serves its blob")
})
