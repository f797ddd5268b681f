// The state rebuilt from the change feed and the message logs: `parley
// verify`'s "rebuild" check replays the feed into objects and compares them
// with the stored rows. A varied history (documents put, patched, deleted
// and re-created; conversations edited and deleted; messages; sessions
// through every state; snapshots; client streams) rebuilds clean; a row
// changed behind Parley's back (sqlite3, or psql on PostgreSQL) is named
// and exits 1; the committed v1 fixture (events written before they
// carried what a rebuild needs) is counted "not rebuildable (older
// events)" and exits 0; a feed trimmed by --feed-retention skips what it
// no longer holds. Also: the bytes of a message post's feed event.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

import { client, expectStatus, readEvents, sleep, userToken } from "./lib/api.mjs"
import { append, createStream, request } from "./lib/http.mjs"
import { TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const FIXTURE_V1 = path.join(root, "tests", "fixtures", "v1")

for (const name of Object.keys(process.env)) if (name.startsWith("PARLEY_") && !["PARLEY_BIN", "PARLEY_TEST_STORE"].includes(name)) delete process.env[name]

const sqliteOnly = (why) => (TEST_PG_URL ? `SQLite only: ${why}` : false)
const pgOnly = TEST_PG_URL ? false : "needs a private PostgreSQL (tests/lib/with-pg)"

/** Run `parley verify` on the server's store. */
function verify(srv) {
  return runParley(srv.pgUrl ? ["verify", "--store", srv.pgUrl] : ["verify", "--data", srv.dataDir])
}

function rebuildLine(stdout) {
  const m = /^rebuild +(\d+) events.*?, (\d+) objects rebuilt and compared, (\d+) not rebuildable \(older events\), (\d+) skipped \(feed trimmed\): (ok|PROBLEMS)$/m.exec(stdout)
  assert.ok(m, `a rebuild line in:\n${stdout}`)
  return { events: +m[1], rebuilt: +m[2], older: +m[3], skipped: +m[4], verdict: m[5] }
}

/** A history with every kind of change. Returns the ids it made. */
async function history(srv) {
  const c = client(srv)
  // Documents: put, patch, replace, patch removing a member; delete and re-create; a server id.
  expectStatus(await c.put("/v1/documents/notes/a", { text: "one", tags: ["x"], n: 0.1 }), 201)
  expectStatus(await c.patch("/v1/documents/notes/a", { text: "two", extra: { deep: true } }), 200)
  expectStatus(await c.put("/v1/documents/notes/a", { text: "three", keep: 1, extra: { deep: true, k: 2 } }), 200)
  expectStatus(await c.patch("/v1/documents/notes/a", { keep: null, extra: { k: null } }), 200)
  expectStatus(await c.put("/v1/documents/notes/b", { v: 1 }), 201)
  expectStatus(await c.del("/v1/documents/notes/b"), 204)
  expectStatus(await c.put("/v1/documents/notes/b", { v: 2 }), 201)
  expectStatus(await c.put("/v1/documents/notes/gone", { v: 1 }), 201)
  expectStatus(await c.del("/v1/documents/notes/gone"), 204)
  const made = expectStatus(await c.post("/v1/documents/notes", { made: "by the server" }), 201)

  // Conversations: created, edited, with messages; one deleted.
  const conv = expectStatus(await c.post("/v1/conversations", { title: "Trip", metadata: { a: 1 } }), 201)
  expectStatus(await c.patch(`/v1/conversations/${conv.id}`, { title: "Trip to Lyon" }), 200)
  expectStatus(await c.patch(`/v1/conversations/${conv.id}`, { metadata: { a: null, b: [1, 2] } }), 200)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "system", content: "be brief" }), 201)
  // Sessions through their states: await ⇄ input then complete; fail; cancel; an untouched pending one.
  const m1 = expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "hi", process: true }), 201)
  const s1 = expectStatus(await c.post("/v1/sessions/claim", { conversation_id: conv.id }), 200)
  assert.equal(s1.id, m1.session_id)
  expectStatus(await c.post(`/v1/sessions/${s1.id}/await`, { request: { tool: "search", q: "trains" } }), 200)
  expectStatus(await c.post(`/v1/sessions/${s1.id}/input`, { data: { approved: true } }), 200)
  expectStatus(await c.post(`/v1/sessions/${s1.id}/complete`, { content: [{ type: "text", text: "Hello" }], metadata: { model: "m" } }), 200)
  const m2 = expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "again", process: true }), 201)
  expectStatus(await c.post("/v1/sessions/claim", { conversation_id: conv.id }), 200)
  expectStatus(await c.post(`/v1/sessions/${m2.session_id}/fail`, { error: { reason: "model down" } }), 200)
  const m3 = expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "stop", process: true }), 201)
  expectStatus(await c.post(`/v1/sessions/${m3.session_id}/cancel`), 200)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "later", process: true }), 201)
  const other = expectStatus(await c.post("/v1/conversations", {}), 201)
  expectStatus(await c.post(`/v1/conversations/${other.id}/messages`, { role: "user", content: "x", process: true }), 201)
  expectStatus(await c.del(`/v1/conversations/${other.id}`), 204)

  // Snapshots: of the conversation, of a document (public, expiring), one deleted.
  const snap = expectStatus(await c.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  expectStatus(await c.post("/v1/snapshots", { source: "/v1/documents/notes/a", public: true, expires_in: 3600, title: "A" }), 201)
  const gone = expectStatus(await c.post("/v1/snapshots", { source: "/v1/documents/notes/b" }), 201)
  expectStatus(await c.del(`/v1/snapshots/${gone.id}`), 204)

  // Client streams: created and closed; created and deleted.
  assert.equal((await createStream(srv.url, "rb/log", "application/json")).status, 201)
  assert.equal((await append(srv.url, "rb/log", '[{"a":1}]', "application/json")).status, 204)
  assert.equal((await request(srv.url, "/v1/stream/rb/log", { method: "POST", headers: { "Stream-Closed": "true" } })).status, 204)
  assert.equal((await createStream(srv.url, "rb/tmp", "text/plain")).status, 201)
  assert.equal((await request(srv.url, "/v1/stream/rb/tmp", { method: "DELETE" })).status, 204)
  return { conv, session: s1, snap, made }
}

test("rebuild - a varied history rebuilds from the feed and the message logs and equals the store", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  await history(srv)
  const r = await verify(srv)
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const line = rebuildLine(r.stdout)
  assert.equal(line.verdict, "ok")
  // 4 documents (a, b, gone, made), 2 conversations, 5 sessions (the deleted
  // conversation's went with it), 2 snapshots, 2 streams (one deleted).
  assert.equal(line.rebuilt, 4 + 2 + 4 + 2 + 1, r.stdout)
  assert.equal(line.older, 0)
  assert.equal(line.skipped, 0)
  assert.match(r.stdout, /^OK: 0 problems found$/m)
})

test("rebuild - events carry what a rebuild needs: a document's content or patch, a session's fields, a snapshot's settings", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const { session, snap } = await history(srv)
  const { events } = await readEvents(client(srv))
  const docs = events.filter((e) => e.type.startsWith("document.") && e.document.id === "a")
  assert.deepEqual(docs.map((e) => Object.keys(e.data).filter((k) => k !== "checksum")), [["content"], ["patch"], ["content"], ["patch"]])
  assert.deepEqual(docs[3].data.patch, { keep: null, extra: { k: null } })
  const sess = events.filter((e) => e.type === "session.updated" && e.session_id === session.id).map((e) => e.data)
  assert.deepEqual(sess.map((d) => [d.from, d.to]), [[null, "pending"], ["pending", "processing"], ["processing", "awaiting_input"], ["awaiting_input", "processing"], ["processing", "completed"]])
  assert.equal(sess[0].max_attempts > 0, true)
  assert.deepEqual(sess[2].request, { tool: "search", q: "trains" })
  assert.deepEqual(sess[3].input, { approved: true })
  assert.equal(typeof sess[4].result_message_id, "string")
  assert.equal("max_attempts" in sess[1], false, "a claim carries nothing more")
  const created = events.find((e) => e.type === "snapshot.created" && e.snapshot_id === snap.id)
  assert.deepEqual(Object.keys(created.data).sort(), ["expires_at", "kind", "public", "source", "title"])
})

test("rebuild - a message post's feed event: its size", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv)
  const conv = expectStatus(await c.post("/v1/conversations", { title: "sizes" }), 201)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "hello there" }), 201)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "again", process: true }), 201)
  const res = await request(srv.url, "/v1/events?offset=-1")
  const events = JSON.parse(res.body)
  const bytes = (e) => Buffer.byteLength(JSON.stringify(e))
  const msg = events.filter((e) => e.type === "message.created")
  const sess = events.filter((e) => e.type === "session.updated")
  // Reported by the test run (the numbers the README gives).
  t.diagnostic(`message.created ${bytes(msg[0])} bytes; with process: message.created ${bytes(msg[1])} + session.updated ${bytes(sess[0])} bytes`)
  assert.deepEqual(Object.keys(msg[0].data).sort(), ["role", "seq", "session_id"], "a message's event does not copy the message")
  assert.ok(bytes(sess[0]) < 400)
})

test("rebuild - a document's data changed in the SQLite file is named, exit 1", { skip: sqliteOnly("edits the database file with sqlite3"), timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const { conv, session } = await history(srv)
  assert.equal(await srv.stop(), 0)
  const file = path.join(srv.dataDir, "parley.db")
  const sql = (q) => {
    const r = spawnSync("sqlite3", [file, q], { encoding: "utf8" })
    assert.equal(r.status, 0, r.stderr)
  }
  let r = await runParley(["verify", file])
  assert.equal(r.code, 0, r.stdout)
  sql(`UPDATE documents SET data = '{"text":"forged"}' WHERE id = 'a'`)
  r = await runParley(["verify", file])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, /problem: document notes\/a of '[^']*': data is \{"text":"forged"\} in the store but \{"extra":\{"deep":true\},"text":"three"\} rebuilt from the feed/)
  assert.equal(rebuildLine(r.stdout).verdict, "PROBLEMS")
  assert.match(r.stdout, /^FAILED: 1 problem found$/m)
  // More rows: a title, a session's input, a deleted row.
  sql(`UPDATE conversations SET title = 'Forged' WHERE id = '${conv.id}'`)
  sql(`UPDATE sessions SET input = '{"approved":false}' WHERE id = '${session.id}'`)
  sql(`DELETE FROM documents WHERE id = 'b'`)
  r = await runParley(["verify", file])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, new RegExp(`problem: conversation ${conv.id}: title is "Forged" in the store but "Trip to Lyon" rebuilt from the feed`))
  assert.match(r.stdout, new RegExp(`problem: session ${session.id}: input is \\{"approved":false\\} in the store but \\{"approved":true\\} rebuilt`))
  assert.match(r.stdout, /problem: document notes\/b of '[^']*': rebuilt from the feed, but the store has no row/)
})

test("rebuild - a row changed with psql is named, exit 1 (PostgreSQL)", { skip: pgOnly, timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const { conv } = await history(srv)
  const psql = (sql) => {
    const r = spawnSync("psql", [srv.pgUrl, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8", timeout: 30_000 })
    assert.equal(r.status, 0, `psql ${sql}: ${r.stderr}`)
  }
  let r = await verify(srv)
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(rebuildLine(r.stdout).verdict, "ok")
  psql(`UPDATE documents SET data = '{"text":"forged"}' WHERE id = 'a'`)
  psql(`UPDATE conversations SET metadata = '{"b":[1,3]}' WHERE id = '${conv.id}'`)
  r = await verify(srv)
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout, /problem: document notes\/a of '[^']*': data is \{"text":"forged"\} in the store but .* rebuilt from the feed/)
  assert.match(r.stdout, new RegExp(`problem: conversation ${conv.id}: metadata is \\{"b":\\[1,3\\]\\} in the store but \\{"b":\\[1,2\\]\\} rebuilt`))
})

test("rebuild - the v1 fixture's objects (older events) are counted as not rebuildable, exit 0; a new PUT makes a document rebuildable", { skip: sqliteOnly("the fixture is a SQLite file"), timeout: 60_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-rebuild-v1-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const f of fs.readdirSync(FIXTURE_V1)) if (f.startsWith("parley.db")) fs.copyFileSync(path.join(FIXTURE_V1, f), path.join(dir, f))
  // A server upgrades the fixture's schema first; its objects keep their old events.
  const srv = await startServer({ t, dataDir: dir, env: { PARLEY_STORE: `sqlite:${dir}/parley.db` } })
  let r = await runParley(["verify", "--data", dir])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const before = rebuildLine(r.stdout)
  assert.ok(before.older > 0, r.stdout)
  assert.equal(before.verdict, "ok")

  const c = client(srv)
  const list = expectStatus(await c.get("/v1/documents/notes"), 200)
  assert.ok(list.items.length > 0, "the fixture has documents")
  expectStatus(await c.put(`/v1/documents/notes/${list.items[0].id}`, { replaced: true }), 200)
  assert.equal(await srv.stop(), 0)
  r = await runParley(["verify", "--data", dir])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const after = rebuildLine(r.stdout)
  assert.equal(after.older, before.older - 1, r.stdout)
  assert.equal(after.rebuilt, before.rebuilt + 1, r.stdout)
})

test("rebuild - with --feed-retention the objects whose history was trimmed are skipped and counted, exit 0", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--feed-retention", "2s"] })
  const c = client(srv)
  expectStatus(await c.put("/v1/documents/notes/old", { v: 1 }), 201)
  expectStatus(await c.patch("/v1/documents/notes/old2", { v: 1 }), 404)
  expectStatus(await c.put("/v1/documents/notes/old2", { v: 1 }), 201)
  await sleep(3500)
  expectStatus(await c.patch("/v1/documents/notes/old2", { v: 2 }), 200)
  expectStatus(await c.put("/v1/documents/notes/new", { v: 1 }), 201)
  // The maintenance tick trims the feeds within about a second.
  let r
  for (let i = 0; i < 20; i++) {
    r = await verify(srv)
    if (/\(trimmed start\)/.test(r.stdout)) break
    await sleep(500)
  }
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const line = rebuildLine(r.stdout)
  assert.match(r.stdout, /^rebuild +\d+ events \(trimmed start\)/m)
  assert.equal(line.skipped, 2, r.stdout) // old (no event left), old2 (its creation trimmed)
  assert.equal(line.rebuilt, 1, r.stdout) // new
})

// ---- features beside the rebuild: branches, blobs, user moves, import, schema ----

const RB_ADMIN = "rebuild-admin-key-5e1f"
const RB_SECRET = "rebuild-jwt-secret-9a2c"

function authServer(t) {
  return startServer({ t, args: ["--admin-key", RB_ADMIN, "--jwt-secret", RB_SECRET] })
}

/** A conversation with messages on main and on two branches (an edit and a regenerate). */
async function branched(srv) {
  const c = client(srv)
  const conv = expectStatus(await c.post("/v1/conversations", { title: "forks" }), 201)
  const u1 = expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "u1" }), 201)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "assistant", content: "a1" }), 201)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "u2" }), 201)
  const ed = expectStatus(await c.post(`/v1/conversations/${conv.id}/messages/${u1.id}/edit`, { content: "u1 edited" }), 201)
  const branch = ed.branch?.id ?? ed.branch ?? ed.message?.branch
  // A message posted on the (now active) branch, and one back on main.
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "assistant", content: "a1 on the branch" }), 201)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "main again", branch: "main" }), 201)
  return { conv, u1, branch }
}

test("rebuild - conversation branches: branch messages are checked against their branch logs, not main's count; exit 0", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const { conv } = await branched(srv)
  const list = expectStatus(await client(srv).get(`/v1/conversations/${conv.id}/branches`), 200)
  assert.ok(list.items.length >= 2, JSON.stringify(list))
  const r = await verify(srv)
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const line = rebuildLine(r.stdout)
  assert.equal(line.verdict, "ok")
  assert.equal(line.rebuilt, 1, r.stdout)
})

test("rebuild - a branch message changed in the SQLite file is named, exit 1", { skip: sqliteOnly("edits the database file with sqlite3"), timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  await branched(srv)
  assert.equal(await srv.stop(), 0)
  const file = path.join(srv.dataDir, "parley.db")
  let r = await runParley(["verify", file])
  assert.equal(r.code, 0, r.stdout)
  // The branch log's messages: change the role of one (a JSON text row).
  const q = spawnSync("sqlite3", [file, `UPDATE chunks SET data = CAST(replace(CAST(data AS TEXT), '"role":"assistant"', '"role":"tool"') AS BLOB) WHERE stream_id IN (SELECT id FROM streams WHERE path LIKE '_parley/convbranch/%')`], { encoding: "utf8" })
  assert.equal(q.status, 0, q.stderr)
  r = await runParley(["verify", file])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, /problem: conversation [^:]+ branch [^:]+: message seq \d+ has role tool in its log but assistant in its message.created event/)
})

async function uploadBlob(c, bytes, type) {
  return expectStatus(await c.call("POST", "/v1/blobs", { body: bytes, headers: { "Content-Type": type } }), 201, "upload")
}

test("rebuild - blobs: the blobs table rebuilds from blob.created; a changed row is named, exit 1", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv)
  const b1 = await uploadBlob(c, Buffer.from("hello blob"), "text/plain")
  await uploadBlob(c, Buffer.from([1, 2, 3, 4, 5]), "image/png")
  let r = await verify(srv)
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(rebuildLine(r.stdout).rebuilt, 2, r.stdout)
  if (TEST_PG_URL) return
  assert.equal(await srv.stop(), 0)
  const file = path.join(srv.dataDir, "parley.db")
  const q = spawnSync("sqlite3", [file, `UPDATE blobs SET content_type = 'text/html' WHERE id = '${b1.id}'`], { encoding: "utf8" })
  assert.equal(q.status, 0, q.stderr)
  r = await runParley(["verify", file])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, new RegExp(`problem: blob ${b1.id} of '[^']*': content_type is "text/html" in the store but "text/plain" rebuilt from the feed`))
})

test("rebuild - after moving a user's data the objects rebuild with their new owner, exit 0", { timeout: 60_000 }, async (t) => {
  const srv = await authServer(t)
  const anon = client(srv, userToken("anon-7", RB_SECRET))
  const conv = expectStatus(await anon.post("/v1/conversations", { title: "before sign-in" }), 201)
  expectStatus(await anon.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "hi", process: true }), 201)
  expectStatus(await anon.put("/v1/documents/notes/n1", { text: "anon note" }), 201)
  expectStatus(await anon.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  await uploadBlob(anon, Buffer.from("anon bytes"), "text/plain")
  expectStatus(await client(srv, RB_ADMIN).post("/v1/users/anon-7/transfer", { to: "alice" }), 200)
  const alice = client(srv, userToken("alice", RB_SECRET))
  expectStatus(await alice.patch("/v1/documents/notes/n1", { more: 1 }), 200)
  expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "signed in" }), 201)
  const r = await verify(srv)
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const line = rebuildLine(r.stdout)
  assert.equal(line.verdict, "ok")
  assert.equal(line.rebuilt, 5, r.stdout) // conversation, session, document, snapshot, blob (a move leaves blobs with their owner)
})

test("rebuild - a full export imported into an empty store verifies clean; a --user export (no feed) is counted not rebuildable, exit 0", { skip: sqliteOnly("imports into SQLite directories"), timeout: 90_000 }, async (t) => {
  const srv = await authServer(t)
  for (const u of ["alice", "bob"]) {
    const c = client(srv, userToken(u, RB_SECRET))
    const conv = expectStatus(await c.post("/v1/conversations", { title: u }), 201)
    expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "m", process: true }), 201)
    expectStatus(await c.put("/v1/documents/notes/x", { u }), 201)
  }
  const ex = spawnSync(process.env.PARLEY_BIN, ["export", "--data", srv.dataDir], { maxBuffer: 64 << 20 })
  assert.equal(ex.status, 0, String(ex.stderr))
  const one = spawnSync(process.env.PARLEY_BIN, ["export", "--data", srv.dataDir, "--user", "alice"], { maxBuffer: 64 << 20 })
  assert.equal(one.status, 0, String(one.stderr))
  const before = rebuildLine((await verify(srv)).stdout)
  for (const [tag, bytes] of [["full", ex.stdout], ["user", one.stdout]]) {
    const dst = fs.mkdtempSync(path.join(os.tmpdir(), `parley-rebuild-import-${tag}-`))
    t.after(() => fs.rmSync(dst, { recursive: true, force: true }))
    const im = spawnSync(process.env.PARLEY_BIN, ["import", "--data", dst], { input: bytes })
    assert.equal(im.status, 0, String(im.stderr))
    const r = await runParley(["verify", "--data", dst])
    assert.equal(r.code, 0, `${tag}: ${r.stdout}${r.stderr}`)
    const line = rebuildLine(r.stdout)
    assert.equal(line.verdict, "ok", r.stdout)
    if (tag === "full") assert.equal(line.rebuilt, before.rebuilt, r.stdout)
    else {
      assert.match(r.stdout, /^rebuild +0 events \(no feed: imported without it\)/m)
      assert.equal(line.rebuilt, 0, r.stdout)
      assert.equal(line.skipped, 3, r.stdout) // alice's conversation, session, document
    }
  }
})

test("rebuild - a store at an older schema version: verify says to migrate it with parley serve, exit 2", { skip: sqliteOnly("the fixture is a SQLite file"), timeout: 30_000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-rebuild-old-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  for (const f of fs.readdirSync(FIXTURE_V1)) if (f.startsWith("parley.db")) fs.copyFileSync(path.join(FIXTURE_V1, f), path.join(dir, f))
  const r = await runParley(["verify", "--data", dir])
  assert.equal(r.code, 2, r.stdout + r.stderr)
  assert.doesNotMatch(r.stdout + r.stderr, /no such table/)
  assert.match(r.stdout + r.stderr, /the store .* is at schema version 1; this parley needs version \d+: start this version's `parley serve` on it once to migrate it \(verify opens the store read-only and does not migrate\)/)
})
