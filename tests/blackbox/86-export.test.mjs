// `parley export` / `parley import`: a store as JSON Lines and back. A round
// trip is exact (export, import into an empty store, export again: the same
// bytes), import is idempotent (a second run changes nothing), --user keeps
// one owner's objects, a conflicting object or a damaged file refuses the
// whole input with the line number and changes nothing, an SQLite store a
// server runs on is refused, and a server started on the imported store
// serves the same data at the same offsets. Under tests/lib/with-pg the
// SQLite → PostgreSQL → SQLite trip runs too (it skips without it).
//
// Servers run on SQLite in their own directories whatever PARLEY_TEST_STORE
// says; the PostgreSQL cases make an empty database of their own with psql.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import crypto from "node:crypto"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"

import { client, expectStatus, userToken } from "./lib/api.mjs"
import { PARLEY_BIN, TEST_PG_URL, startServer } from "./lib/server.mjs"

// The store under test comes from the arguments alone.
for (const name of Object.keys(process.env)) if (name.startsWith("PARLEY_") && !["PARLEY_BIN", "PARLEY_TEST_STORE", "PARLEY_TEST_PG_DIR"].includes(name)) delete process.env[name]

const ADMIN_KEY = "export-admin-key-3c9d1e"
const SECRET = "export-jwt-secret-77a0b2"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]
const pgOnly = TEST_PG_URL ? false : "needs a private PostgreSQL (tests/lib/with-pg)"

function tmpDir(t, tag = "export") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `parley-${tag}-`))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Run parley with input on stdin: { code, out (Buffer), stdout, stderr }. */
function parley(args, input = "") {
  const r = spawnSync(PARLEY_BIN, args, { input, maxBuffer: 512 << 20, timeout: 60_000 })
  // A refused import stops reading its input: the rest may not be written (EPIPE).
  assert.ok(r.error === undefined || (r.error.code === "EPIPE" && r.status !== null), `parley ${args.join(" ")}: ${r.error}`)
  return { code: r.status, out: r.stdout, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") }
}

function exportOk(args) {
  const r = parley(["export", ...args])
  assert.equal(r.code, 0, `export ${args.join(" ")}: ${r.stderr}`)
  return r.out
}

function importOk(args, input) {
  const r = parley(["import", ...args], input)
  assert.equal(r.code, 0, `import ${args.join(" ")}: ${r.stderr}`)
  return r.stderr
}

const lines = (buf) => buf.toString("utf8").trimEnd().split("\n").map((l) => JSON.parse(l))

/** A server on SQLite in a fresh directory, with authentication. */
function sqliteServer(t, dataDir = null) {
  const dir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "parley-export-srv-"))
  return startServer({ t, dataDir: dir, args: AUTH_ARGS, env: { PARLEY_STORE: `sqlite:${dir}/parley.db` } })
}

/** The bytes of populate()'s blob (three parts), and its id. */
function bigBlob() {
  const big = Buffer.alloc(600 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + (i >> 10)) & 0xff
  return big
}
const BIG_ID = crypto.createHash("sha256").update(bigBlob()).digest("hex")

/** One user's objects of every kind; returns what to look for afterwards. */
async function populate(srv, user) {
  const c = client(srv, userToken(user, SECRET))
  const worker = client(srv, ADMIN_KEY)
  const conv = expectStatus(await c.post("/v1/conversations", { title: `Ünïcode ${user} ✓`, metadata: { tag: user } }), 201)
  for (const n of [1, 2, 3])
    expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "text", text: `m${n} ${user}` }], process: n === 3 }, { headers: { "Idempotency-Key": `${user}-m${n}` } }), 201)
  const claimed = expectStatus(await worker.post("/v1/sessions/claim", { conversation_id: conv.id, lease_seconds: 600 }), 200)
  const out = (v, seq) => worker.call("POST", `/v1/sessions/${claimed.id}/stream`, { body: JSON.stringify(v), headers: { "Content-Type": "application/json", "Producer-Id": "w1", "Producer-Epoch": "0", "Producer-Seq": String(seq) } })
  for (const [i, v] of [{ t: "hel" }, { t: "lo" }].entries()) assert.ok([200, 204].includes((await out(v, i)).status))
  const bin = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0x80])
  expectStatus(await c.call("PUT", `/v1/stream/${user}/bytes`, { headers: { "Content-Type": "application/octet-stream" } }), 201)
  for (const seq of [0, 1]) assert.equal((await c.call("POST", `/v1/stream/${user}/bytes`, { body: bin, headers: { "Content-Type": "application/octet-stream", "Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": String(seq) } })).status, 200)
  expectStatus(await c.call("PUT", `/v1/stream/${user}/text`, { headers: { "Content-Type": "text/plain" } }), 201)
  assert.equal((await c.call("POST", `/v1/stream/${user}/text`, { body: "line one\n", headers: { "Content-Type": "text/plain" } })).status, 204)
  expectStatus(await c.put(`/v1/documents/notes/${user}-a`, { text: "v1" }), 201)
  expectStatus(await c.patch(`/v1/documents/notes/${user}-a`, { more: [1, 2.5, null] }), 200)
  expectStatus(await c.put(`/v1/documents/notes/${user}-gone`, { x: 1 }), 201)
  assert.equal((await c.del(`/v1/documents/notes/${user}-gone`)).status, 204)
  // Blobs: one of three parts (parts are 256 KiB), the same bytes for every
  // user (the same id under two owners), referenced by a message.
  const big = bigBlob()
  const blob = expectStatus(await c.call("POST", "/v1/blobs", { body: big, headers: { "Content-Type": "application/octet-stream" } }), 201)
  expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "text", text: "see" }, { type: "blob", id: blob.id }] }), 201)
  const snap = expectStatus(await c.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}`, public: true }), 201)
  return { c, conv, snap, session: claimed, bin, blob }
}

/** What a client sees of one user's data: the same after a move. */
async function view(srv, user) {
  const c = client(srv, userToken(user, SECRET))
  const convs = expectStatus(await c.get("/v1/conversations"), 200).items
  assert.ok(convs.length > 0, `${user} has conversations`)
  const conv = convs[0]
  const messages = expectStatus(await c.get(`/v1/conversations/${conv.id}/messages`), 200).items
  const log = await c.get(`/v1/conversations/${conv.id}/stream?offset=-1`)
  const session = expectStatus(await c.get(`/v1/conversations/${conv.id}/sessions/latest`), 200)
  const sessOut = await c.get(`/v1/sessions/${session.id}/stream?offset=-1`)
  const bytes = await c.get(`/v1/stream/${user}/bytes?offset=-1`)
  // A reader's offset from the middle stays valid.
  const mid = await c.get(`/v1/stream/${user}/bytes?offset=${encodeURIComponent(bytes.headers["stream-next-offset"].replace(/\d{16}$/, "0000000000000008"))}`)
  const doc = expectStatus(await c.get(`/v1/documents/notes/${user}-a`), 200)
  const snaps = expectStatus(await c.get("/v1/snapshots"), 200).items
  const snap = expectStatus(await c.get(`/v1/snapshots/${snaps[0].id}`), 200)
  // Search finds the messages and the title (the index is rebuilt by the import).
  const found = {}
  for (const word of ["m2", "see", "unicode"]) {
    const hits = expectStatus(await c.get(`/v1/search?q=${encodeURIComponent(word)}`), 200).items
    assert.ok(hits.length > 0, `search ${word} finds ${user}'s data`)
    found[word] = hits.map((h) => [h.conversation_id, h.kind, h.message_id, h.seq])
  }
  const blob = await c.get(`/v1/blobs/${BIG_ID}`)
  assert.equal(blob.status, 200)
  assert.ok(blob.body.equals(bigBlob()), "the blob's bytes")
  const range = await c.get(`/v1/blobs/${BIG_ID}`, { headers: { Range: "bytes=262140-262150" } })
  assert.equal(range.status, 206)
  return {
    found,
    blob: [blob.body.length, blob.body.toString("base64"), blob.headers["content-type"]],
    range: [range.body.toString("hex"), range.headers["content-range"]],
    conv,
    messages,
    log: [log.status, log.text, log.headers["stream-next-offset"]],
    session,
    sessOut: [sessOut.status, sessOut.text, sessOut.headers["stream-next-offset"]],
    bytes: [bytes.status, bytes.body.toString("hex"), bytes.headers["stream-next-offset"]],
    mid: [mid.status, mid.body.toString("hex")],
    doc: [doc, expectStatus(await c.get(`/v1/documents/notes/${user}-a`), 200).version],
    snap,
  }
}

// ---- SQLite → SQLite ---------------------------------------------------------

test("export - round trip: export while serving, import into an empty store, export again gives the same bytes; a server on it serves the same data", { timeout: 120_000 }, async (t) => {
  const src = await sqliteServer(t)
  await populate(src, "alice")
  await populate(src, "bob")
  expectStatus(await client(src, ADMIN_KEY).put("/v1/stream/__ds/subscriptions/sub1", { type: "pull-wake", pattern: "jobs/*", wake_stream: "wakes/w1", lease_ttl_ms: 5000 }), 201)
  const before = { alice: await view(src, "alice"), bob: await view(src, "bob") }

  const e1 = exportOk(["--data", src.dataDir]) // the server is running
  const objs = lines(e1)
  assert.deepEqual(objs[0], { kind: "parley-export", format: 1 })
  assert.deepEqual(objs.at(-1), { kind: "end", objects: objs.length - 2 })
  const kinds = new Set(objs.map((o) => o.kind))
  for (const k of ["stream", "chunk", "producer", "document", "conversation", "session", "snapshot", "idempotency", "subscription", "counter", "server_key", "blob", "blob_part", "blob_ref"])
    assert.ok(kinds.has(k), `the export has a ${k}`)
  // Binary stream data is base64url, JSON stream data text.
  assert.ok(objs.some((o) => o.kind === "chunk" && o.stream === "alice/bytes" && o.base64 === Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13, 0x80]).toString("base64url")))
  assert.ok(objs.some((o) => o.kind === "chunk" && o.stream === "alice/text" && o.text === "line one\n"))
  // Dependency order: every stream before any chunk, conversations before sessions.
  const firstIdx = (k) => objs.findIndex((o) => o.kind === k)
  const lastIdx = (k) => objs.findLastIndex((o) => o.kind === k)
  assert.ok(lastIdx("stream") < firstIdx("chunk") && lastIdx("conversation") < firstIdx("session"))

  const dst = tmpDir(t)
  const said = importOk(["--data", dst], e1)
  assert.match(said, new RegExp(`imported ${objs.length - 2} objects`))
  const e2 = exportOk(["--data", dst])
  assert.ok(e2.equals(e1), "export → import → export gives the same bytes")
  const v = parley(["verify", "--data", dst])
  assert.equal(v.code, 0, v.stdout + v.stderr)

  // A server on the imported store serves the same things at the same offsets.
  await src.stop()
  const moved = await sqliteServer(t, dst)
  for (const user of ["alice", "bob"]) assert.deepEqual(await view(moved, user), before[user], `${user}'s data after the move`)
  // An idempotency record came along: the retried write is replayed, not applied twice.
  const alice = client(moved, userToken("alice", SECRET))
  const conv = before.alice.conv
  const replay = await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "text", text: "m1 alice" }], process: false }, { headers: { "Idempotency-Key": "alice-m1" } })
  assert.equal(replay.headers["idempotent-replayed"], "true", `replayed: ${replay.status} ${replay.text}`)
  // New objects sort after the imported ones (the counters came along).
  const fresh = expectStatus(await alice.post("/v1/conversations", { title: "after the move" }), 201)
  assert.equal(expectStatus(await alice.get("/v1/conversations?limit=1"), 200).items[0].id, fresh.id)
  await moved.stop()
})

test("export - import is idempotent: a second import of the same file changes nothing", { timeout: 60_000 }, async (t) => {
  const src = await sqliteServer(t)
  await populate(src, "alice")
  const e1 = exportOk(["--data", src.dataDir])
  const dst = tmpDir(t)
  importOk(["--data", dst], e1)
  const db = path.join(dst, "parley.db")
  const after1 = exportOk(["--data", dst])
  const said = importOk(["--data", dst], e1)
  const n = lines(e1).length - 2
  assert.match(said, new RegExp(`imported 0 objects .*\\(${n} already there with the same content`))
  assert.ok(exportOk(["--data", dst]).equals(after1), "the second import changed nothing")
  // The same objects written with other spacing and key order are the same content.
  const reordered = e1.toString("utf8").trimEnd().split("\n").map((l) => " " + JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(l)).reverse())) + " ").join("\n") + "\n"
  assert.match(importOk(["--data", dst], reordered), /imported 0 objects/)
  assert.ok(fs.existsSync(db))
})

test("export - --user ID exports only that user's objects; imported alone they serve, the other user's ids answer 404", { timeout: 60_000 }, async (t) => {
  const src = await sqliteServer(t)
  const a = await populate(src, "alice")
  const b = await populate(src, "bob")
  const e = exportOk(["--data", src.dataDir, "--user", "alice"])
  const objs = lines(e).slice(1, -1)
  const text = e.toString("utf8")
  assert.ok(!text.includes(b.conv.id) && !text.includes("bob"), "nothing of bob's")
  for (const o of objs) {
    if ("owner" in o) assert.equal(o.owner, "alice", JSON.stringify(o))
    assert.ok(!["subscription", "subscription_stream", "server_key"].includes(o.kind), `no ${o.kind} in a user export`)
  }
  assert.ok(objs.some((o) => o.kind === "conversation" && o.id === a.conv.id))
  assert.ok(objs.some((o) => o.kind === "counter"), "the counters come along")
  const dst = tmpDir(t)
  importOk(["--data", dst], e)
  await src.stop()
  const moved = await sqliteServer(t, dst)
  const alice = client(moved, userToken("alice", SECRET))
  expectStatus(await alice.get(`/v1/conversations/${a.conv.id}`), 200)
  assert.equal((await client(moved, userToken("bob", SECRET)).get(`/v1/conversations/${b.conv.id}`)).status, 404)
  await moved.stop()
})

// What each table of the schema is in an export: its kind, and for each
// column its field (null: an internal row id, never exported; the rows
// that point at a stream name it by path). A table or column this list
// does not know fails the test below: a new one must be added to kinds[]
// in src/store/transfer.c (and here), or an export would silently drop it.
const EXPORTED = {
  meta: null, // the schema version: the importing store's own
  sqlite_sequence: null, // SQLite's AUTOINCREMENT counters
  streams: { kind: "stream", cols: { id: null, fork_src: "fork_src" } },
  // On SQLite streams is a view over these two (what an append changes is
  // kept in the narrow stream_tails row); both are the stream lines.
  stream_rows: { kind: "stream", cols: { id: null, fork_src: "fork_src" } },
  stream_tails: { kind: "stream", cols: { id: null } },
  chunks: { kind: "chunk", cols: { id: null, stream_id: "stream", data: ["text", "base64"] } },
  producers: { kind: "producer", cols: { stream_id: "stream" } },
  idempotency: { kind: "idempotency" },
  documents: { kind: "document" },
  counters: { kind: "counter" },
  conversations: { kind: "conversation" },
  sessions: { kind: "session" },
  snapshots: { kind: "snapshot", cols: { kind: "snapshot_kind" } },
  snapshot_visits: { kind: "snapshot_visit" },
  subscriptions: { kind: "subscription" },
  subscription_streams: { kind: "subscription_stream" },
  server_keys: { kind: "server_key" },
  // The search index is the store's own: the import indexes the
  // conversations it writes (the round trip searches them).
  search_rows: null,
  // The records of user moves done on the source deployment (a retried
  // move's stored answer): the deployment's, not the data's; not exported.
  transfers: null,
  // Staged uploads are not exported (an unfinished upload is restarted by
  // its client); a blob's parts name it by owner and id, and the import
  // draws a new upload number.
  blob_uploads: null,
  blob_parts: { kind: "blob_part", cols: { upload: null } },
  blobs: { kind: "blob", cols: { upload: null } },
  blob_refs: { kind: "blob_ref" },
}

test("export - every table and column of the schema is in the export (a new one must be added to kinds[])", { timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  await populate(srv, "alice")
  const admin = client(srv, ADMIN_KEY)
  expectStatus(await admin.put("/v1/stream/__ds/subscriptions/s1", { type: "pull-wake", streams: ["alice/text"], wake_stream: "wakes/w1", lease_ttl_ms: 5000 }), 201)
  const snap = expectStatus(await client(srv, userToken("alice", SECRET)).get("/v1/snapshots"), 200).items[0]
  expectStatus(await client(srv, null).get(`/v1/snapshots/${snap.id}`), 200) // a visit
  const objs = lines(exportOk(["--data", srv.dataDir]))
  const q = spawnSync("sqlite3", ["-readonly", "-separator", " ", path.join(srv.dataDir, "parley.db"), "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY m.name, p.cid"], { encoding: "utf8" })
  assert.equal(q.status, 0, q.stderr)
  const columns = q.stdout.trim().split("\n").map((l) => l.split(" "))
  assert.ok(columns.length > 50, "the schema's columns")
  for (const [table, column] of columns) {
    if (table.startsWith("search_fts")) continue // FTS5's own tables (the index, rebuilt by the import)
    assert.ok(table in EXPORTED, `table ${table} is not in the export: add a kind to kinds[] in src/store/transfer.c (and to EXPORTED here)`)
    const e = EXPORTED[table]
    if (!e) continue
    const field = e.cols && column in e.cols ? e.cols[column] : column
    if (field === null) continue
    const rows = objs.filter((o) => o.kind === e.kind)
    assert.ok(rows.length > 0, `no ${e.kind} in the export to check ${table}.${column} (populate one)`)
    const fields = [field].flat()
    assert.ok(rows.every((o) => fields.some((f) => f in o)), `${table}.${column} is not in the export's ${e.kind} lines (as ${fields.join(" or ")}): add it to kinds[] in src/store/transfer.c`)
  }
})

// ---- refusals: nothing half imported -----------------------------------------

test("export - an object already in the store with other content refuses the whole input, naming it; nothing is imported", { timeout: 60_000 }, async (t) => {
  const src = await sqliteServer(t)
  const a = await populate(src, "alice")
  const e1 = exportOk(["--data", src.dataDir])
  const dst = tmpDir(t)
  importOk(["--data", dst], e1)
  const before = exportOk(["--data", dst])
  // A new document first (it would be imported), then the changed conversation.
  const ls = e1.toString("utf8").trimEnd().split("\n")
  const i = ls.findIndex((l) => JSON.parse(l).kind === "conversation")
  const conv = JSON.parse(ls[i])
  conv.title = "changed elsewhere"
  ls[i] = JSON.stringify(conv)
  const doc = JSON.parse(ls.find((l) => JSON.parse(l).kind === "document"))
  ls.splice(1, 0, JSON.stringify({ ...doc, id: "brand-new" }))
  ls[ls.length - 1] = JSON.stringify({ kind: "end", objects: ls.length - 2 })
  const r = parley(["import", "--data", dst], ls.join("\n") + "\n")
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, new RegExp(`line ${i + 2}: conversation id=${a.conv.id} is already in the store with different content`))
  assert.match(r.stderr, /nothing was imported/)
  assert.ok(exportOk(["--data", dst]).equals(before), "nothing changed, not even the new document before it")
})

test("export - damaged input: bad JSON, a truncated line, a missing end line, a wrong count, an unknown kind or field → exit 1 with the line number, nothing imported", { timeout: 60_000 }, async (t) => {
  const src = await sqliteServer(t)
  await populate(src, "alice")
  const e1 = exportOk(["--data", src.dataDir]).toString("utf8")
  const ls = e1.trimEnd().split("\n")
  const n = ls.length
  const cases = [
    ["bad JSON on line 3", [...ls.slice(0, 2), '{"kind":"stream", oops', ...ls.slice(3)].join("\n") + "\n", /line 3: not JSON/],
    ["cut in the middle of a line", e1.slice(0, e1.length - Math.floor(ls[n - 3].length / 2) - ls[n - 1].length - ls[n - 2].length - 3), new RegExp(`line ${n - 2}: .*(not JSON|truncated)`)],
    ["cut at a line boundary", ls.slice(0, n - 4).join("\n") + "\n", new RegExp(`line ${n - 4}: the input ends without its end line`)],
    ["a wrong count", [...ls.slice(0, n - 2), ls[n - 1]].join("\n") + "\n", new RegExp(`line ${n - 1}: the end line counts ${n - 2} objects but ${n - 3}`)],
    ["an unknown kind", [ls[0], '{"kind":"hologram","id":"x"}', ...ls.slice(1)].join("\n") + "\n", /line 2: unknown kind "hologram"/],
    ["an unknown field", [ls[0], ls[1].replace('{"kind":"stream",', '{"kind":"stream","colour":"red",'), ...ls.slice(2)].join("\n") + "\n", /line 2: stream: unknown field "colour"/],
    ["a wrong type", [ls[0], ls[1].replace(/"tail":\d+/, '"tail":"12"'), ...ls.slice(2)].join("\n") + "\n", /line 2: stream: "tail" must be an integer/],
    ["not an export", '{"hello":1}\n', /line 1: not an object with a "kind"|line 1: not a parley export/],
    ["empty", "", /line 1: the input is empty/],
    ["a chunk of a stream that is nowhere", [ls[0], JSON.stringify({ kind: "chunk", stream: "nowhere", end_pos: 1, start_pos: 0, unit_end: 1, text: "x" }), JSON.stringify({ kind: "end", objects: 1 })].join("\n") + "\n", /line 2: .*stream "nowhere", is neither in the store nor earlier in the input/],
  ]
  for (const [what, input, re] of cases) {
    const dst = tmpDir(t)
    const r = parley(["import", "--data", dst], input)
    assert.equal(r.code, 1, `${what}: exit 1; ${r.stderr}`)
    assert.match(r.stderr, re, what)
    assert.match(r.stderr, /nothing was imported/, what)
    const after = lines(exportOk(["--data", dst]))
    assert.deepEqual(after, [{ kind: "parley-export", format: 1 }, { kind: "end", objects: 0 }], `${what}: the store is still empty`)
  }
})

test("export - import into the directory of a running SQLite server is refused; export beside it works", { timeout: 60_000 }, async (t) => {
  const src = await sqliteServer(t)
  await populate(src, "alice")
  const e1 = exportOk(["--data", src.dataDir])
  const r = parley(["import", "--data", src.dataDir], e1)
  assert.equal(r.code, 1)
  assert.match(r.stderr, /refusing to import into .*a parley server is running on it/)
})

test("export - usage: --help, an argument, --user twice the limit, an unopenable store", { timeout: 30_000 }, async (t) => {
  for (const cmd of ["export", "import"]) {
    const h = parley([cmd, "--help"])
    assert.equal(h.code, 0)
    assert.match(h.stdout, new RegExp(`^usage: parley ${cmd} `))
    for (const line of h.stdout.split("\n")) assert.ok(line.length <= 80, line)
    assert.equal(parley(["help", cmd]).stdout, h.stdout)
    const extra = parley([cmd, "--data", tmpDir(t), "file.jsonl"])
    assert.equal(extra.code, 2, extra.stderr)
    assert.match(extra.stderr, /unexpected argument 'file.jsonl'/)
  }
  assert.match(parley(["--help"]).stdout, /^ {2}export\b/m)
  assert.equal(parley(["export", "--user", "x".repeat(256)]).code, 2)
  const r = parley(["export", "--data", path.join(tmpDir(t), "none")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /no database there/)
})

// ---- SQLite → PostgreSQL → SQLite --------------------------------------------

/** An empty database on the test PostgreSQL server, dropped after the test. */
function pgDatabase(t) {
  const name = `parley_export_${process.pid}_${Math.floor(Math.random() * 1e9)}`
  const psql = (sql) => spawnSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", TEST_PG_URL, "-c", sql], { encoding: "utf8" })
  const r = psql(`CREATE DATABASE ${name}`)
  assert.equal(r.status, 0, r.stderr)
  t.after(() => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  const m = /^(postgres(?:ql)?:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/.exec(TEST_PG_URL)
  return `${m[1]}/${name}${m[3] ?? ""}`
}

test("export - SQLite → PostgreSQL → SQLite: the same lines at every step, and a server on PostgreSQL serves the data", { skip: pgOnly, timeout: 120_000 }, async (t) => {
  const src = await sqliteServer(t)
  await populate(src, "alice")
  await populate(src, "bob")
  const before = await view(src, "alice")
  const e1 = exportOk(["--data", src.dataDir])
  await src.stop()

  const pg = pgDatabase(t)
  importOk(["--store", pg], e1)
  const e2 = exportOk(["--store", pg])
  assert.ok(e2.equals(e1), "PostgreSQL's export is SQLite's, byte for byte")
  assert.match(importOk(["--store", pg], e1), /imported 0 objects/, "idempotent on PostgreSQL too")
  const v = parley(["verify", "--store", pg])
  assert.equal(v.code, 0, v.stdout + v.stderr)

  const onPg = await startServer({ t, args: [...AUTH_ARGS, "--store", pg] })
  assert.deepEqual(await view(onPg, "alice"), before, "served from PostgreSQL")
  await onPg.stop()

  const back = tmpDir(t)
  importOk(["--data", back], e2)
  assert.ok(exportOk(["--data", back]).equals(e1), "and back into SQLite, the same lines")

  // A conflict on PostgreSQL refuses the whole input too.
  const ls = e1.toString("utf8").trimEnd().split("\n")
  const i = ls.findIndex((l) => JSON.parse(l).kind === "document")
  ls[i] = ls[i].replace(/"version":\d+/, '"version":99')
  const r = parley(["import", "--store", pg], ls.join("\n") + "\n")
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, new RegExp(`line ${i + 1}: document owner=`))
  assert.ok(exportOk(["--store", pg]).equals(e1), "nothing changed on PostgreSQL")
})

// ---- the README's drill ------------------------------------------------------

/** The shell lines of the README's drill (its first sh block), comments left out. */
function drillLines() {
  const readme = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "README.md"), "utf8")
  const at = readme.indexOf("### Backup and restore drill")
  assert.ok(at >= 0, "the README has a drill section")
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at))
  assert.ok(block, "the drill has a sh block")
  return block[1].split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"))
}

test("export - the README's drill: every command runs as written (backup while serving, verify, restore into a fresh directory, serve it, same answers, export → import → same lines)", { timeout: 120_000 }, async (t) => {
  const prod = await sqliteServer(t)
  await populate(prod, "alice")
  const tmp = tmpDir(t, "rehearsal")
  const bin = path.join(tmp, "bin")
  fs.mkdirSync(bin)
  fs.symlinkSync(PARLEY_BIN, path.join(bin, "parley"))
  fs.mkdirSync(path.join(tmp, "backups"))
  const store = TEST_PG_URL ? pgDatabase(t) : `sqlite:${tmp}/standin/parley.db`
  const places = {
    "/var/lib/parley": prod.dataDir,
    "/backups": path.join(tmp, "backups"),
    "/tmp/parley-drill": path.join(tmp, "drill"),
    "postgres://parley@db.internal/parley": `'${store}'`, // quoted: a socket URL has a &
  }
  const subst = (line) => line.replace(/postgres:\/\/parley@db\.internal\/parley|\/var\/lib\/parley|\/backups|\/tmp\/parley-drill/g, (m) => places[m])
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, PARLEY_ADMIN_KEY: ADMIN_KEY }
  const lines = drillLines()
  assert.ok(lines.length >= 8, `the drill's commands:\n${lines.join("\n")}`)
  let drill = null
  const ran = []
  for (const raw of lines) {
    let line = subst(raw)
    if (/^parley serve /.test(line)) {
      // The harness starts it (on a port of its own) with the same data directory.
      const m = /^parley serve --data (\S+) --listen 127\.0\.0\.1:(\d+) &$/.exec(line)
      assert.ok(m, `the drill's serve line: ${raw}`)
      drill = await startServer({ t, dataDir: m[1], args: AUTH_ARGS, env: { PARLEY_STORE: `sqlite:${m[1]}/parley.db` } })
      ran.push("serve")
      continue
    }
    if (drill) line = line.replace(/127\.0\.0\.1:4438/g, `127.0.0.1:${drill.port}`)
    const r = spawnSync("bash", ["-c", `set -o pipefail; ${line}`], { env, encoding: "utf8", timeout: 60_000 })
    assert.equal(r.status, 0, `${raw}\n→ ${line}\n${r.stdout}${r.stderr}`)
    if (/^curl /.test(raw)) {
      const want = await client(prod, ADMIN_KEY, { headers: { "Parley-User": "alice" } }).get("/v1/conversations")
      assert.deepEqual(JSON.parse(r.stdout), want.json(), "the restored server answers what production answers")
      assert.ok(JSON.parse(r.stdout).items.length > 0)
    }
    if (/^parley verify/.test(raw)) assert.match(r.stdout, /^OK/m, `${raw}: ${r.stdout}`)
    ran.push(raw.split(" ").slice(0, 2).join(" "))
  }
  for (const step of ["parley backup", "parley verify", "parley restore", "serve", "curl -s", "parley export", "parley import"])
    assert.ok(ran.includes(step), `the drill ran ${step}: ${ran.join(", ")}`)
  await drill.stop()
})
