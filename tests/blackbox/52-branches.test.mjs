// Conversation branches: editing a past user message or regenerating an
// answer makes a sibling branch that shares the history before it (a fork
// of the log, no copy); listing along any branch with the "< 2/3 >"
// switcher of each message in the same request; the active branch;
// sessions and snapshots per branch; gap-free seq along every branch;
// events, ownership, idempotency, bad input, deep edit chains past the
// fork-depth limit, and deleting a conversation that has branches.
import assert from "node:assert/strict"
import { test } from "node:test"

import { client, expectError, expectStatus, readEvents, userToken } from "./lib/api.mjs"
import { TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-branches-1"
const SECRET = "test-jwt-secret-branches-1"

async function setup(t) {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET] })
  return {
    srv,
    alice: client(srv, userToken("alice", SECRET)),
    bob: client(srv, userToken("bob", SECRET)),
    worker: client(srv, ADMIN_KEY),
  }
}

const newConversation = async (c) => expectStatus(await c.post("/v1/conversations", { title: "b" }), 201, "POST conversation")
const send = async (c, id, body) => expectStatus(await c.post(`/v1/conversations/${id}/messages`, body), 201, "POST message")
const edit = async (c, id, mid, body) => expectStatus(await c.post(`/v1/conversations/${id}/messages/${mid}/edit`, body), 201, "edit")
const regenerate = async (c, id, mid, body) =>
  expectStatus(await c.post(`/v1/conversations/${id}/messages/${mid}/regenerate`, body), 201, "regenerate")

/** Every message along a branch (the active one when branch is null). */
async function along(c, id, branch = null) {
  const out = []
  let cursor = null
  for (let i = 0; i < 100; i++) {
    const q = new URLSearchParams({ limit: "100" })
    if (branch) q.set("branch", branch)
    if (cursor) q.set("cursor", cursor)
    const page = expectStatus(await c.get(`/v1/conversations/${id}/messages?${q}`), 200, "messages")
    out.push(...page.items)
    if (!page.next_cursor) return out
    cursor = page.next_cursor
  }
  throw new Error("more than 100 pages")
}

function gapFree(msgs, what) {
  msgs.forEach((m, i) => assert.equal(m.seq, i + 1, `${what}: seq of message ${i}`))
}

/** A worker answers the session sid with content. */
async function answer(worker, convId, sid, content, branch = null) {
  const s = expectStatus(await worker.post("/v1/sessions/claim", { conversation_id: convId, lease_seconds: 30 }), 200, "claim")
  assert.equal(s.id, sid, "the claimed session")
  if (branch) assert.equal(s.branch, branch, "the claimed session's branch")
  return expectStatus(await worker.post(`/v1/sessions/${sid}/complete`, { content }), 200, "complete")
}

/** u1, a1, u2, a2 on main (answers through sessions). */
async function fourMessages(alice, worker, id) {
  const u1 = await send(alice, id, { role: "user", content: "u1", process: true })
  await answer(worker, id, u1.session_id, "a1")
  const u2 = await send(alice, id, { role: "user", content: "u2", process: true })
  await answer(worker, id, u2.session_id, "a2")
  return along(alice, id)
}

test("branches - a conversation that never branches behaves as before", async (t) => {
  const { alice } = await setup(t)
  const conv = await newConversation(alice)
  await send(alice, conv.id, { role: "user", content: "hi" })
  const list = expectStatus(await alice.get(`/v1/conversations/${conv.id}/branches`), 200)
  assert.equal(list.active, "main")
  assert.equal(list.next_cursor, null)
  assert.equal(list.items.length, 1)
  assert.deepEqual(
    { ...list.items[0], created_at: undefined },
    { id: "main", conversation_id: conv.id, parent: null, fork_seq: 1, message_count: 1, active: true, session_id: null, created_at: undefined },
  )
  const msgs = await along(alice, conv.id)
  assert.equal(msgs.length, 1)
  assert.ok(!("siblings" in msgs[0]), "no switcher without siblings")
  assert.deepEqual(await along(alice, conv.id, "main"), msgs)
  const got = expectStatus(await alice.get(`/v1/conversations/${conv.id}`), 200)
  assert.equal(got.message_count, 1)
})

test("branches - edit a user message: a sibling branch, both readable, switcher in one request", async (t) => {
  const { srv, alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [u1, a1, u2, a2] = await fourMessages(alice, worker, conv.id)
  assert.deepEqual([u1, a1, u2, a2].map((m) => m.content), ["u1", "a1", "u2", "a2"])

  const e = await edit(alice, conv.id, u2.id, { content: "u2 edited", metadata: { k: 1 } })
  assert.equal(e.role, "user")
  assert.equal(e.seq, 3)
  assert.equal(e.content, "u2 edited")
  assert.deepEqual(e.metadata, { k: 1 })
  assert.notEqual(e.id, u2.id)
  assert.equal(typeof e.branch, "string")
  assert.equal(e.session_id, null)

  // The new branch is active: it shares u1 and a1 (same ids), then the edit.
  const b = await along(alice, conv.id)
  assert.deepEqual(b.map((m) => m.id), [u1.id, a1.id, e.id])
  gapFree(b, "new branch")
  assert.ok(!("siblings" in b[0]) && !("siblings" in b[1]))
  assert.deepEqual(b[2].siblings, { index: 2, count: 2, ids: [u2.id, e.id], branches: ["main", e.branch] })
  // main is unchanged and shows the same switcher at seq 3, on its side.
  const m = await along(alice, conv.id, "main")
  assert.deepEqual(m.map((x) => x.id), [u1.id, a1.id, u2.id, a2.id])
  gapFree(m, "main")
  assert.deepEqual(m[2].siblings, { index: 1, count: 2, ids: [u2.id, e.id], branches: ["main", e.branch] })
  assert.ok(!("siblings" in m[3]))
  assert.deepEqual(await along(alice, conv.id, e.branch), b)
  // The same branch as a read-only JSON stream (no switcher there); without
  // ?branch= the stream is main's log, as before.
  const st = await alice.get(`/v1/conversations/${conv.id}/stream?offset=-1&branch=${e.branch}`)
  assert.equal(st.status, 200, st.text)
  assert.deepEqual(st.json().map((x) => x.id), [u1.id, a1.id, e.id])
  const sm = await alice.get(`/v1/conversations/${conv.id}/stream?offset=-1`)
  assert.deepEqual(sm.json().map((x) => x.id), [u1.id, a1.id, u2.id, a2.id])
  expectError(await alice.get(`/v1/conversations/${conv.id}/stream?offset=-1&branch=nosuch`), 404, "not_found")

  // Branch list and one branch.
  const list = expectStatus(await alice.get(`/v1/conversations/${conv.id}/branches`), 200)
  assert.equal(list.active, e.branch)
  assert.deepEqual(list.items.map((x) => [x.id, x.parent, x.fork_seq, x.message_count, x.active]), [
    ["main", null, 1, 4, false],
    [e.branch, "main", 3, 3, true],
  ])
  const one = expectStatus(await alice.get(`/v1/conversations/${conv.id}/branches/${e.branch}`), 200)
  assert.deepEqual(one, list.items[1])

  // Switch back to main: the default listing follows; POST appends to main.
  const act = expectStatus(await alice.patch(`/v1/conversations/${conv.id}/branches/main`, { active: true }), 200)
  assert.equal(act.active, true)
  assert.deepEqual((await along(alice, conv.id)).map((x) => x.id), m.map((x) => x.id))
  const u3 = await send(alice, conv.id, { role: "user", content: "u3" })
  assert.equal(u3.seq, 5)
  assert.ok(!("branch" in u3), "a message on main looks as before")
  // Append to the other branch by name: seq follows that branch.
  const x = await send(alice, conv.id, { role: "user", content: "on b", branch: e.branch })
  assert.equal(x.seq, 4)
  assert.equal(x.branch, e.branch)
  gapFree(await along(alice, conv.id, e.branch), "branch after an append")
  gapFree(await along(alice, conv.id, "main"), "main after an append")
  // message_count is main's; the branch's is in its record.
  const c2 = expectStatus(await alice.get(`/v1/conversations/${conv.id}`), 200)
  assert.equal(c2.message_count, 5)
  const b2 = expectStatus(await alice.get(`/v1/conversations/${conv.id}/branches/${e.branch}`), 200)
  assert.equal(b2.message_count, 4)

  // Editing the edit makes a third sibling at the same point (not a deeper branch).
  const e2 = await edit(alice, conv.id, e.id, { content: "u2 again", branch: e.branch })
  const b3 = await along(alice, conv.id)
  assert.deepEqual(b3.map((x) => x.id), [u1.id, a1.id, e2.id])
  assert.deepEqual(b3[2].siblings, { index: 3, count: 3, ids: [u2.id, e.id, e2.id], branches: ["main", e.branch, e2.branch] })
  const rec = expectStatus(await alice.get(`/v1/conversations/${conv.id}/branches/${e2.branch}`), 200)
  assert.equal(rec.parent, "main")
  assert.equal(rec.fork_seq, 3)
  // Editing the first message: siblings at seq 1 share nothing.
  const e3 = await edit(alice, conv.id, u1.id, { content: "from the top", branch: "main" })
  const b4 = await along(alice, conv.id)
  assert.deepEqual(b4.map((x) => x.id), [e3.id])
  assert.equal(b4[0].siblings.count, 2)
  assert.equal(b4[0].siblings.index, 2)
  // A clean exit (under the sanitizers: no leak report).
  assert.equal(await srv.stop(), 0, srv.stderr())
})

test("branches - edit with process runs its session on the new branch", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2] = await fourMessages(alice, worker, conv.id)
  const e = await edit(alice, conv.id, u2.id, { content: "u2b", process: true })
  assert.equal(e.session.status, "pending")
  assert.equal(e.session.message_id, e.id)
  assert.equal(e.session_id, e.session.id)
  // The worker learns the session's branch (claim, GET) and reads the
  // history along it, whatever branch is active.
  expectStatus(await alice.patch(`/v1/conversations/${conv.id}/branches/main`, { active: true }), 200)
  assert.equal(expectStatus(await worker.get(`/v1/sessions/${e.session_id}`), 200).branch, e.branch)
  assert.equal(expectStatus(await worker.get(`/v1/sessions/${u2.session_id}`), 200).branch, "main")
  await answer(worker, conv.id, e.session_id, "a2b", e.branch)
  // Meanwhile main was made active again: the answer still goes to its own branch.
  const b = await along(alice, conv.id, e.branch)
  assert.deepEqual(b.map((m) => m.content), ["u1", "a1", "u2b", "a2b"])
  assert.equal(b[3].session_id, e.session_id)
  gapFree(b, "branch")
  assert.equal((await along(alice, conv.id, "main")).length, 4)
  // A message posted with process on a branch: its answer lands on that branch.
  expectStatus(await alice.patch(`/v1/conversations/${conv.id}/branches/main`, { active: true }), 200)
  const u3 = await send(alice, conv.id, { role: "user", content: "u3b", process: true, branch: e.branch })
  await answer(worker, conv.id, u3.session_id, "a3b", e.branch)
  assert.deepEqual((await along(alice, conv.id, e.branch)).map((m) => m.content), ["u1", "a1", "u2b", "a2b", "u3b", "a3b"])
  assert.deepEqual((await along(alice, conv.id, "main")).map((m) => m.content), ["u1", "a1", "u2", "a2"])
})

test("branches - regenerate an answer: a new session whose answer becomes a sibling", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [u1, a1, u2, a2] = await fourMessages(alice, worker, conv.id)
  const r = await regenerate(alice, conv.id, a2.id, { max_attempts: 2 })
  assert.equal(r.session.status, "pending")
  assert.equal(r.session.message_id, u2.id, "the session answers the message before")
  assert.equal(r.branch.parent, "main")
  assert.equal(r.branch.fork_seq, 4)
  assert.equal(r.branch.message_count, 3)
  assert.equal(r.branch.active, true)
  assert.equal(r.branch.session_id, r.session.id)
  // Before the answer: the branch reads u1 a1 u2, and a2 has no sibling yet.
  const before = await along(alice, conv.id)
  assert.deepEqual(before.map((m) => m.id), [u1.id, a1.id, u2.id])
  assert.ok(!("siblings" in (await along(alice, conv.id, "main"))[3]))
  const done = await answer(worker, conv.id, r.session.id, "a2 again", r.branch.id)
  assert.equal(done.status, "completed")
  const after = await along(alice, conv.id)
  assert.deepEqual(after.map((m) => m.content), ["u1", "a1", "u2", "a2 again"])
  gapFree(after, "regenerated branch")
  assert.equal(after[3].id, done.result_message_id)
  assert.deepEqual(after[3].siblings, { index: 2, count: 2, ids: [a2.id, after[3].id], branches: ["main", r.branch.id] })
  // Regenerate again from the new answer: a third sibling.
  const r2 = await regenerate(alice, conv.id, after[3].id)
  await answer(worker, conv.id, r2.session.id, "a2 third")
  const third = await along(alice, conv.id)
  assert.deepEqual(third[3].siblings.ids, [a2.id, after[3].id, third[3].id])
  assert.equal(third[3].siblings.index, 3)
})

test("branches - events in the feed", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2, a2] = await fourMessages(alice, worker, conv.id)
  const { next } = await readEvents(alice)
  const e = await edit(alice, conv.id, u2.id, { content: "x" })
  const r = await regenerate(alice, conv.id, a2.id, { branch: "main" })
  expectStatus(await alice.patch(`/v1/conversations/${conv.id}/branches/main`, { active: true }), 200)
  const { events } = await readEvents(alice, next)
  const kinds = events.map((ev) => ev.type)
  assert.deepEqual(kinds, [
    "branch.created", "branch.activated", "message.created",
    "branch.created", "branch.activated", "session.updated",
    "branch.activated",
  ])
  const created = events.filter((ev) => ev.type === "branch.created")
  assert.deepEqual(created.map((ev) => ev.data.id), [e.branch, r.branch.id])
  assert.ok(created.every((ev) => ev.conversation_id === conv.id))
  const acts = events.filter((ev) => ev.type === "branch.activated").map((ev) => [ev.data.from, ev.data.branch])
  assert.deepEqual(acts, [["main", e.branch], [e.branch, r.branch.id], [r.branch.id, "main"]])
  const msg = events.find((ev) => ev.type === "message.created")
  assert.equal(msg.message_id, e.id)
  assert.equal(msg.data.branch, e.branch)
  assert.equal(msg.data.seq, 3)
})

test("branches - another user's ids answer 404", async (t) => {
  const { alice, bob, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2, a2] = await fourMessages(alice, worker, conv.id)
  const e = await edit(alice, conv.id, u2.id, { content: "x" })
  const base = `/v1/conversations/${conv.id}`
  for (const [method, path, json] of [
    ["GET", `${base}/branches`],
    ["GET", `${base}/branches/${e.branch}`],
    ["GET", `${base}/branches/main`],
    ["PATCH", `${base}/branches/main`, { active: true }],
    ["GET", `${base}/messages?branch=${e.branch}`],
    ["POST", `${base}/messages/${u2.id}/edit`, { content: "bob" }],
    ["POST", `${base}/messages/${a2.id}/regenerate`, {}],
    ["POST", `${base}/messages`, { role: "user", content: "bob", branch: e.branch }],
    ["POST", "/v1/snapshots", { source: base, branch: e.branch }],
  ])
    expectError(await bob.call(method, path, { json }), 404, "not_found", `bob ${method} ${path}`)
  // Nothing changed for alice.
  const list = expectStatus(await alice.get(`${base}/branches`), 200)
  assert.equal(list.items.length, 2)
  assert.equal(list.active, e.branch)
  // The admin reaches them.
  expectStatus(await worker.get(`${base}/branches/${e.branch}`), 200)
})

test("branches - Idempotency-Key on edit, regenerate and activate", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2, a2] = await fourMessages(alice, worker, conv.id)
  const base = `/v1/conversations/${conv.id}`
  for (const [path, json, status, otherJson] of [
    [`${base}/messages/${u2.id}/edit`, { content: "once", process: true }, 201, { content: "twice" }],
    [`${base}/messages/${a2.id}/regenerate`, { branch: "main" }, 201, { branch: "main", max_attempts: 3 }],
    [`${base}/branches/main`, { active: true }, 200, null],
  ]) {
    const method = path.endsWith("main") ? "PATCH" : "POST"
    const key = `k-${path}`
    const first = await alice.call(method, path, { json, headers: { "Idempotency-Key": key } })
    assert.equal(first.status, status, first.text)
    const again = await alice.call(method, path, { json, headers: { "Idempotency-Key": key } })
    assert.equal(again.status, status, again.text)
    assert.equal(again.headers["idempotent-replayed"], "true")
    assert.equal(again.text, first.text)
    if (otherJson) {
      const other = await alice.call(method, path, { json: otherJson, headers: { "Idempotency-Key": key } })
      assert.equal(other.status, 422, `same key, other body: ${other.text}`)
    }
  }
  const list = expectStatus(await alice.get(`${base}/branches`), 200)
  assert.equal(list.items.length, 3, "one branch per edit and regenerate")
  const sessions = expectStatus(await alice.get(`${base}/sessions`), 200)
  assert.equal(sessions.items.length, 4, "two turns, one edit with process, one regenerate")
})

test("branches - bad input gets a clear error and changes nothing", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [u1, a1] = await fourMessages(alice, worker, conv.id)
  const base = `/v1/conversations/${conv.id}`
  expectError(await alice.post(`${base}/messages/${a1.id}/edit`, { content: "x" }), 400, "invalid_message", "edit an answer")
  expectError(await alice.post(`${base}/messages/${u1.id}/regenerate`, {}), 400, "invalid_message", "regenerate a user message")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, {}), 400, "invalid_message", "edit without content")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, { content: "x", role: "assistant" }), 400, "invalid_message")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, { content: "x", color: 1 }), 400, "invalid_message")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, [1]), 400, "invalid_message")
  expectError(await alice.post(`${base}/messages/${a1.id}/regenerate`, { max_attempts: 0 }), 400, "invalid_message")
  expectError(await alice.post(`${base}/messages/${a1.id}/regenerate`, { what: 1 }), 400, "invalid_message")
  expectError(await alice.post(`${base}/messages/nosuchmessage/edit`, { content: "x" }), 404, "not_found")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, { content: "x", branch: "nosuchbranch" }), 404, "not_found")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, { content: "x", branch: 7 }), 400, "invalid_branch")
  expectError(await alice.post(`${base}/messages/${u1.id}/edit`, { content: "x", branch: "a/b" }), 400, "invalid_branch")
  expectError(await alice.get(`${base}/messages?branch=nosuchbranch`), 404, "not_found")
  expectError(await alice.get(`${base}/messages?branch=${"x".repeat(300)}`), 400, "invalid_branch")
  expectError(await alice.get(`${base}/branches/nosuchbranch`), 404, "not_found")
  expectError(await alice.patch(`${base}/branches/main`, { active: false }), 400, "invalid_branch")
  expectError(await alice.patch(`${base}/branches/main`, { active: true, x: 1 }), 400, "invalid_branch")
  expectError(await alice.patch(`${base}/branches/nosuchbranch`, { active: true }), 404, "not_found")
  expectError(await alice.post(`${base}/branches`, {}), 405)
  expectError(await alice.get(`${base}/branches?limit=0`), 400, "invalid_limit")
  expectError(await alice.get(`${base}/branches?cursor=zz`), 400, "invalid_cursor")
  expectError(await alice.get(`${base}/messages/${u1.id}/edit`), 405)
  expectError(await alice.post(`${base}/messages/${u1.id}/other`, {}), 404, "not_found")
  expectError(await alice.post("/v1/snapshots", { source: base, branch: "nosuch" }), 404, "not_found")
  expectError(await alice.post("/v1/snapshots", { source: base, branch: 3 }), 400, "invalid_snapshot")
  const list = expectStatus(await alice.get(`${base}/branches`), 200)
  assert.equal(list.items.length, 1, "nothing was made")
  assert.equal((await along(alice, conv.id)).length, 4)
  // A later message whose content names u1's id is not u1.
  await send(alice, conv.id, { role: "user", content: [{ id: u1.id, type: "ref" }] })
  const e = await edit(alice, conv.id, u1.id, { content: "first, edited" })
  assert.equal(e.seq, 1)
  assert.deepEqual((await along(alice, conv.id)).map((m) => m.content), ["first, edited"])
})

test("branches - snapshots capture a branch (named, or the active one)", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2] = await fourMessages(alice, worker, conv.id)
  const e = await edit(alice, conv.id, u2.id, { content: "edited" })
  const source = `/v1/conversations/${conv.id}`
  const active = expectStatus(await alice.post("/v1/snapshots", { source }), 201)
  const main = expectStatus(await alice.post("/v1/snapshots", { source, branch: "main" }), 201)
  // Later messages on the branch do not change the snapshot.
  await send(alice, conv.id, { role: "assistant", content: "later" })
  const a = expectStatus(await alice.get(`/v1/snapshots/${active.id}`), 200)
  assert.deepEqual(a.content.messages.map((m) => m.content), ["u1", "a1", "edited"])
  assert.equal(a.content.branch, e.branch)
  const m = expectStatus(await alice.get(`/v1/snapshots/${main.id}`), 200)
  assert.deepEqual(m.content.messages.map((x) => x.content), ["u1", "a1", "u2", "a2"])
  assert.equal(m.content.branch, "main")
  // Deleting the conversation with its branches keeps the snapshots readable.
  expectStatus(await alice.del(`/v1/conversations/${conv.id}`), 204)
  expectError(await alice.get(`${source}/branches`), 404, "not_found")
  expectError(await alice.get(`${source}/messages?branch=${e.branch}`), 404, "not_found")
  const a2 = expectStatus(await alice.get(`/v1/snapshots/${active.id}`), 200)
  assert.deepEqual(a2.content.messages, a.content.messages)
  expectStatus(await alice.del(`/v1/snapshots/${active.id}`), 204)
  expectStatus(await alice.del(`/v1/snapshots/${main.id}`), 204)
})

test("branches - deleting a conversation with branches and running sessions", async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2, a2] = await fourMessages(alice, worker, conv.id)
  await edit(alice, conv.id, u2.id, { content: "x", process: true })
  await regenerate(alice, conv.id, a2.id, { branch: "main" })
  expectStatus(await alice.del(`/v1/conversations/${conv.id}`), 204)
  expectStatus(await worker.post("/v1/sessions/claim", { lease_seconds: 5 }), 204, "no session outlives it")
  const { events } = await readEvents(alice)
  assert.equal(events.at(-1).type, "conversation.deleted")
})

test("branches - 120 successive edits of one message, and a chain 120 edits deep", { timeout: 120_000 }, async (t) => {
  const { srv, alice } = await setup(t)
  // The same message edited again and again: 121 siblings at one point.
  const conv = await newConversation(alice)
  const u1 = await send(alice, conv.id, { role: "user", content: "q" })
  await send(alice, conv.id, { role: "assistant", content: "a" })
  const u2 = await send(alice, conv.id, { role: "user", content: "v0" })
  let last = u2
  for (let i = 1; i <= 120; i++) last = await edit(alice, conv.id, last.id, { content: `v${i}` })
  const msgs = await along(alice, conv.id)
  assert.deepEqual(msgs.map((m) => m.content), ["q", "a", "v120"])
  assert.equal(msgs[2].siblings.count, 121)
  assert.equal(msgs[2].siblings.index, 121)
  assert.equal(msgs[2].siblings.ids[0], u2.id)
  assert.equal(msgs[0].id, u1.id)

  // Each edit made after the previous branch grew: every branch forks the
  // one before it, 120 deep, past the fork-depth limit (64).
  const deep = await newConversation(alice)
  let user = await send(alice, deep.id, { role: "user", content: "0" })
  const expect = []
  for (let i = 1; i <= 120; i++) {
    const e = await edit(alice, deep.id, user.id, { content: `edit ${i}` })
    assert.equal(e.seq, 2 * i - 1, `seq of edit ${i}`)
    const a = await send(alice, deep.id, { role: "assistant", content: `answer ${i}` })
    assert.equal(a.seq, 2 * i)
    user = await send(alice, deep.id, { role: "user", content: `next ${i}` })
    expect.push(`edit ${i}`, `answer ${i}`)
  }
  expect.push("next 120")
  const chain = await along(alice, deep.id)
  assert.deepEqual(chain.map((m) => m.content), expect)
  gapFree(chain, "deep chain")
  // Every edit point shows its two siblings.
  for (let i = 0; i < 120; i++) assert.equal(chain[2 * i].siblings?.count, 2, `switcher at seq ${2 * i + 1}`)
  const list = expectStatus(await alice.get(`/v1/conversations/${deep.id}/branches?limit=100`), 200)
  assert.equal(list.items.length, 100)
  const rest = expectStatus(await alice.get(`/v1/conversations/${deep.id}/branches?cursor=${list.next_cursor}`), 200)
  assert.equal(rest.items.length, 21)
  assert.equal(rest.next_cursor, null)
  // A snapshot of the deepest branch, then the conversation's delete.
  const snap = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${deep.id}` }), 201)
  const got = expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200)
  assert.deepEqual(got.content.messages.map((m) => m.content), expect)
  expectStatus(await alice.del(`/v1/conversations/${deep.id}`), 204)
  expectStatus(await alice.del(`/v1/conversations/${conv.id}`), 204)
  assert.deepEqual(expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200).content.messages.length, 241)
  assert.equal(await srv.stop(), 0, srv.stderr())
})

test("branches - parley verify finds no problem in a store with branches, deep chains and a deleted conversation", {
  skip: TEST_PG_URL ? "SQLite only: verify reads the server's data directory" : false,
  timeout: 60_000,
}, async (t) => {
  const { srv, alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2, a2] = await fourMessages(alice, worker, conv.id)
  const e = await edit(alice, conv.id, u2.id, { content: "x", process: true })
  await answer(worker, conv.id, e.session_id, "y")
  const r = await regenerate(alice, conv.id, a2.id, { branch: "main" })
  await answer(worker, conv.id, r.session.id, "z")
  const deep = await newConversation(alice)
  let user = await send(alice, deep.id, { role: "user", content: "0" })
  for (let i = 0; i < 70; i++) {
    await edit(alice, deep.id, user.id, { content: `e${i}` })
    user = await send(alice, deep.id, { role: "user", content: `n${i}` })
  }
  const gone = await newConversation(alice)
  const g = await send(alice, gone.id, { role: "user", content: "g" })
  await edit(alice, gone.id, g.id, { content: "h" })
  expectStatus(await alice.del(`/v1/conversations/${gone.id}`), 204)
  const v = await runParley(["verify", "--data", srv.dataDir])
  assert.equal(v.code, 0, v.stdout + v.stderr)
  assert.match(v.stdout, /^OK: 0 problems found$/m)
})

test("branches - messages on a branch are searchable like messages on main, whichever branch is active; a hit names the message", async (t) => {
  const { alice, bob, worker } = await setup(t)
  const conv = await newConversation(alice)
  const [, , u2] = await fourMessages(alice, worker, conv.id)
  const e = await edit(alice, conv.id, u2.id, { content: "quetzal sighting edited" })
  const later = await send(alice, conv.id, { role: "user", content: [{ type: "text", text: "a second quetzal" }], branch: e.branch })
  const find = async (c, q) => expectStatus(await c.get(`/v1/search?q=${encodeURIComponent(q)}`), 200, "search").items
  const hits = (await find(alice, "quetzal")).filter((h) => h.kind === "message")
  assert.deepEqual(hits.map((h) => [h.conversation_id, h.message_id, h.seq]).sort(), [[conv.id, e.id, 3], [conv.id, later.id, 4]].sort())
  // Back on main: the edited branch's messages still show (they were written; the hit names them).
  expectStatus(await alice.patch(`/v1/conversations/${conv.id}/branches/main`, { active: true }), 200, "activate main")
  assert.ok((await find(alice, "sighting")).some((h) => h.message_id === e.id), "an inactive branch's message is found")
  assert.equal((await find(bob, "quetzal")).length, 0, "never another user's")
})
