// Backups and the store's health: `parley backup` (online, verified, written
// atomically: the order is proved with strace), `parley restore` (stopped
// stores only, verified input, --force), `parley verify` (integrity check and
// Parley's invariants; flipped bytes are caught), scheduled backups of
// `parley serve --backup-every`, and schema versions (a v1 store made by an
// earlier build still serves; a newer store is refused).
//
// Every command runs as a child process on temporary directories; servers
// come from lib/server.mjs, on SQLite whatever PARLEY_TEST_STORE says
// (these are file operations), except the PostgreSQL cases. Under
// tests/lib/with-pg (PARLEY_TEST_STORE a postgres:// URL) the SQLite-only
// cases skip, by name (the plain run covers them), and `parley verify
// --store postgres://` runs on a server's own database: clean, then with
// invariants broken through psql.
import assert from "node:assert/strict"
import { spawnSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"
import { fileURLToPath } from "node:url"

import { client, expectStatus, sleep } from "./lib/api.mjs"
import { append, createStream, readAll } from "./lib/http.mjs"
import { PARLEY_BIN, TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const FIXTURE_V1 = path.join(root, "tests", "fixtures", "v1", "parley.db")

// The store under test comes from the arguments alone.
for (const name of Object.keys(process.env)) if (name.startsWith("PARLEY_") && !["PARLEY_BIN", "PARLEY_TEST_STORE"].includes(name)) delete process.env[name]

const sqliteOnly = (why) => (TEST_PG_URL ? `SQLite only: ${why}` : false)
const pgOnly = TEST_PG_URL ? false : "needs a private PostgreSQL (tests/lib/with-pg)"

function tmpDir(t, tag = "ops") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `parley-${tag}-`))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A server on SQLite in a fresh data directory (removed at cleanup). */
function sqliteServer(t, args = [], dir = null) {
  const dataDir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "parley-ops-srv-"))
  return startServer({ t, dataDir, args, env: { PARLEY_STORE: `sqlite:${dataDir}/parley.db` } })
}

/** Some of everything: a conversation with messages, streams, a document, a snapshot. */
async function populate(srv, tag = "x") {
  const c = client(srv)
  const conv = expectStatus(await c.post("/v1/conversations", { title: `conv ${tag}` }), 201)
  for (const n of [1, 2, 3])
    expectStatus(await c.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: `m${n}`, process: n === 3 }, { headers: { "Idempotency-Key": `${tag}-${n}` } }), 201)
  assert.equal((await createStream(srv.url, `s-${tag}`, "application/json")).status, 201)
  assert.equal((await append(srv.url, `s-${tag}`, '[{"a":1},{"b":2}]', "application/json")).status, 204)
  assert.equal((await createStream(srv.url, `b-${tag}`, "application/octet-stream")).status, 201)
  assert.equal((await append(srv.url, `b-${tag}`, "bytes of " + tag, "application/octet-stream")).status, 204)
  expectStatus(await c.put(`/v1/documents/notes/${tag}`, { text: `note ${tag}` }), 201)
  expectStatus(await c.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  return conv
}

async function verifyOk(file) {
  const r = await runParley(["verify", file])
  assert.equal(r.code, 0, `verify ${file}: ${r.stdout}${r.stderr}`)
  return r.stdout
}

// ---- backup ----------------------------------------------------------------

test("ops - backup while the server writes: exit 0, the copy verifies, a server on it serves the data", { skip: sqliteOnly("a file backup"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  const conv = await populate(srv)
  assert.equal((await createStream(srv.url, "busy")).status, 201)
  let writing = true
  let appended = 0
  const writer = (async () => {
    while (writing) {
      const r = await append(srv.url, "busy", "0123456789")
      assert.equal(r.status, 204)
      appended++
    }
  })()
  const out = tmpDir(t)
  const file = path.join(out, "copy.db")
  await sleep(100)
  const r = await runParley(["backup", "--data", srv.dataDir, file], { timeoutMs: 30_000 })
  writing = false
  await writer
  assert.equal(r.code, 0, `backup: ${r.stderr}`)
  assert.match(r.stdout, /backup written and verified: .*copy\.db \(\d+ bytes\)/)
  assert.ok(appended > 0, "the server kept committing")
  assert.deepEqual(fs.readdirSync(out), ["copy.db"], "no temporary file left")
  assert.equal(fs.statSync(file).mode & 0o777, 0o600, "the copy is the owner's only (it holds the server's keys)")
  const report = await verifyOk(file)
  assert.match(report, /^conversations +1 conversations, 3 messages: ok$/m)

  // A server on the copy: what was there at the backup.
  const dir = tmpDir(t, "ops-from-backup")
  fs.copyFileSync(file, path.join(dir, "parley.db"))
  const copy = await sqliteServer(t, [], dir)
  const c = client(copy)
  const got = expectStatus(await c.get(`/v1/conversations/${conv.id}`), 200)
  assert.equal(got.message_count, 3)
  const busy = await readAll(copy.url, "busy")
  assert.equal(busy.status, 200)
  assert.equal(busy.text.length % 10, 0, "whole appends only: one consistent snapshot")
  assert.equal(busy.text, "0123456789".repeat(busy.text.length / 10))
})

test("ops - backup into a directory with --keep N: timestamped files, the oldest removed", { skip: sqliteOnly("a file backup"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  await populate(srv)
  const dir = tmpDir(t)
  fs.writeFileSync(path.join(dir, "unrelated.txt"), "kept")
  for (let i = 0; i < 4; i++) {
    const r = await runParley(["backup", "--data", srv.dataDir, "--keep", "2", dir])
    assert.equal(r.code, 0, r.stderr)
    await sleep(5) // distinct millisecond stamps
  }
  const files = fs.readdirSync(dir).sort()
  const backups = files.filter((f) => /^parley-\d{8}T\d{6}\.\d{3}Z\.db$/.test(f))
  assert.equal(backups.length, 2, `two kept: ${files}`)
  assert.ok(files.includes("unrelated.txt"), "other files are left alone")
  for (const f of backups) await verifyOk(path.join(dir, f))

  // --keep needs a directory; a missing store is a usage error.
  let r = await runParley(["backup", "--data", srv.dataDir, "--keep", "2", path.join(dir, "f.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--keep needs FILE to be a directory/)
  r = await runParley(["backup", "--data", path.join(dir, "nothing-here"), path.join(dir, "f.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /no database there/)
  r = await runParley(["backup", "--data", srv.dataDir])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /FILE is missing/)
})

test("ops - a backup removes the temporary files crashed backups left in its directory once a day old, and nothing else", { skip: sqliteOnly("a file backup"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  await populate(srv)
  const dir = tmpDir(t)
  const old = Date.now() / 1000 - 2 * 86400
  const stale = path.join(dir, ".parley-backup-Ab12Cd")
  fs.writeFileSync(stale, "half a copy")
  fs.utimesSync(stale, old, old)
  const fresh = path.join(dir, ".parley-backup-Ef34Gh") // a backup still running
  fs.writeFileSync(fresh, "being written")
  const oldDir = path.join(dir, ".parley-backup-notafile")
  fs.mkdirSync(oldDir)
  fs.utimesSync(oldDir, old, old)
  const other = path.join(dir, "parley-notes.txt")
  fs.writeFileSync(other, "mine")
  fs.utimesSync(other, old, old)

  const r = await runParley(["backup", "--data", srv.dataDir, path.join(dir, "copy.db")])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /removed 1 temporary file of interrupted backups/)
  assert.ok(!fs.existsSync(stale), "the day-old temporary file is removed")
  for (const f of [fresh, oldDir, other]) assert.ok(fs.existsSync(f), `${path.basename(f)} is left alone`)
  await verifyOk(path.join(dir, "copy.db"))
  const again = await runParley(["backup", "--data", srv.dataDir, path.join(dir, "copy2.db")])
  assert.equal(again.code, 0, again.stderr)
  assert.doesNotMatch(again.stdout, /removed/)
})

test("ops - backup writes a temp file, fsyncs it, renames it, then fsyncs the directory (strace)", { skip: sqliteOnly("a file backup"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  await populate(srv)
  const out = tmpDir(t)
  const file = path.join(out, "traced.db")
  const trace = path.join(tmpDir(t), "trace.txt")
  const r = spawnSync(
    "strace",
    ["-f", "-qq", "-o", trace, "-e", "trace=openat,open,close,write,pwrite64,writev,pwritev,fsync,fdatasync,rename,renameat,renameat2",
      PARLEY_BIN, "backup", "--data", srv.dataDir, file],
    {
      encoding: "utf8",
      timeout: 30_000,
      // LeakSanitizer cannot run under ptrace (the ASan build of make test).
      env: { ...process.env, ASAN_OPTIONS: [process.env.ASAN_OPTIONS, "detect_leaks=0"].filter(Boolean).join(":") },
    },
  )
  assert.equal(r.status, 0, `strace parley backup: ${r.stderr}`)
  const events = []
  const fds = new Map() // "pid fd" -> path
  for (const line of fs.readFileSync(trace, "utf8").split("\n")) {
    const m = /^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line)
    if (!m) continue
    const [, pid, call, argsText, ret] = m
    const strs = [...argsText.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1])
    if (call === "openat" || call === "open") {
      if (Number(ret) >= 0) fds.set(`${pid} ${ret}`, strs[0])
      events.push({ call: "open", path: strs[0], flags: argsText })
    } else if (call === "close") {
      fds.delete(`${pid} ${/^\d+/.exec(argsText)[0]}`)
    } else if (call.startsWith("rename")) {
      events.push({ call: "rename", from: strs[0], to: strs[1] })
    } else {
      const fd = /^\d+/.exec(argsText)?.[0]
      events.push({ call: call.startsWith("f") ? "fsync" : "write", path: fds.get(`${pid} ${fd}`) })
    }
  }
  const abs = (p) => path.resolve(p)
  const ren = events.findIndex((e) => e.call === "rename" && abs(e.to) === abs(file))
  assert.ok(ren > 0, "the copy is renamed to FILE")
  const tmp = abs(events[ren].from)
  assert.equal(path.dirname(tmp), out, "the temporary file is in FILE's directory")
  const writes = events.map((e, i) => [e, i]).filter(([e]) => e.call === "write" && e.path && abs(e.path) === tmp)
  assert.ok(writes.length > 0, "the copy is written to the temporary file")
  const lastWrite = writes.at(-1)[1]
  const sync = events.findIndex((e, i) => i > lastWrite && e.call === "fsync" && e.path && abs(e.path) === tmp)
  assert.ok(sync > lastWrite && sync < ren, "the temporary file is fsynced after its last write, before the rename")
  const dirSync = events.findIndex((e, i) => i > ren && e.call === "fsync" && e.path && abs(e.path) === out)
  assert.ok(dirSync > ren, "the directory is fsynced after the rename")
  for (const e of events.slice(0, ren)) {
    assert.ok(!(e.call === "open" && e.path && abs(e.path) === abs(file)), `FILE's name is not opened before the rename: ${e.flags}`)
    assert.ok(!(e.call === "write" && e.path && abs(e.path) === abs(file)), "nothing is written to FILE's name before the rename")
  }
  await verifyOk(file)
})

test("ops - backup and restore of a PostgreSQL store are refused and point to pg_dump / pg_restore / PITR", { timeout: 30_000 }, async (t) => {
  let r = await runParley(["backup", "--store", "postgres://u@127.0.0.1:1/none", path.join(tmpDir(t), "x.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /pg_dump/)
  assert.match(r.stderr, /point-in-time recovery/)
  r = await runParley(["restore", "--store", "postgres://u@127.0.0.1:1/none", path.join(tmpDir(t), "x.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /pg_restore/)
  // verify does run on PostgreSQL: a server it cannot reach is exit 2, the password masked.
  r = await runParley(["verify", "--store", "postgres://u:sekrit@127.0.0.1:1/none"])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /cannot open the store postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/none: /)
  assert.doesNotMatch(r.stderr, /sekrit/)
})

// ---- scheduled backups ------------------------------------------------------

test("ops - serve --backup-every takes verified backups on its own thread and keeps --backup-keep", { skip: sqliteOnly("file backups"), timeout: 60_000 }, async (t) => {
  const dir = tmpDir(t)
  const srv = await sqliteServer(t, ["--backup-every", "1s", "--backup-dir", dir, "--backup-keep", "2"])
  await populate(srv)
  // Three seconds or more: three backups or more, so the oldest were removed.
  const start = Date.now()
  while (fs.readdirSync(dir).filter((f) => f.endsWith(".db")).length < 2 || Date.now() < start + 3500) {
    assert.ok(Date.now() < start + 20_000, `no backups appeared: ${fs.readdirSync(dir)}\n${srv.stderr()}`)
    await sleep(200)
  }
  assert.equal(await srv.stop(), 0)
  const backups = fs.readdirSync(dir).filter((f) => /^parley-.*\.db$/.test(f))
  assert.equal(backups.length, 2, `--backup-keep 2: ${backups}`)
  assert.match(srv.stderr(), /backup written and verified: /)
  for (const f of backups) await verifyOk(path.join(dir, f))

  // The same from the variables; and the usage errors.
  const dir2 = tmpDir(t)
  const srv2 = await startServer({ t, env: { PARLEY_STORE: `sqlite:${tmpDir(t)}/parley.db`, PARLEY_BACKUP_EVERY: "1", PARLEY_BACKUP_DIR: dir2 } })
  const until = Date.now() + 15_000
  while (!fs.readdirSync(dir2).some((f) => f.endsWith(".db"))) {
    assert.ok(Date.now() < until, "PARLEY_BACKUP_EVERY: no backup appeared")
    await sleep(200)
  }
  assert.equal(await srv2.stop(), 0)
  for (const [args, message] of [
    [["--backup-every", "1m"], /--backup-every needs --backup-dir/],
    [["--backup-dir", dir], /--backup-dir needs --backup-every/],
    [["--backup-every", "0", "--backup-dir", dir], /invalid value '0' for --backup-every/],
    [["--backup-every", "5x", "--backup-dir", dir], /invalid value '5x' for --backup-every/],
    [["--backup-every", "1h", "--backup-dir", dir, "--store", "postgres://u@h/db"], /pg_dump/],
  ]) {
    const r = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", dir, ...args])
    assert.equal(r.code, 2, `serve ${args.join(" ")}: ${r.stderr}`)
    assert.match(r.stderr, message)
  }
})

// ---- restore ----------------------------------------------------------------

test("ops - restore: refuses a running server, a store holding data without --force, a corrupt file", { skip: sqliteOnly("restores a file"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  const conv = await populate(srv, "orig")
  const file = path.join(tmpDir(t), "b.db")
  assert.equal((await runParley(["backup", "--data", srv.dataDir, file])).code, 0)

  // The directory of a running server.
  let r = await runParley(["restore", "--data", srv.dataDir, "--force", file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /a parley server is running on it/)

  // After it stops: it holds data, so --force is needed.
  await populate(srv, "later")
  assert.equal(await srv.stop(), 0)
  r = await runParley(["restore", "--data", srv.dataDir, file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /the store holds data; pass --force/)

  // A corrupt file is refused, whatever --force says, and nothing is touched.
  const bad = Buffer.from(fs.readFileSync(file))
  const at = bad.indexOf("conv orig")
  assert.ok(at > 0)
  const pageSize = bad.readUInt16BE(16) === 1 ? 65536 : bad.readUInt16BE(16)
  const page = Math.floor(at / pageSize) * pageSize
  for (let i = 3; i < 8; i++) bad[page + i] ^= 0xff
  const badFile = path.join(path.dirname(file), "bad.db")
  fs.writeFileSync(badFile, bad)
  const before = fs.readFileSync(path.join(srv.dataDir, "parley.db"))
  r = await runParley(["restore", "--data", srv.dataDir, "--force", badFile])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /refusing to restore .*bad\.db: it failed verification/)
  assert.ok(before.equals(fs.readFileSync(path.join(srv.dataDir, "parley.db"))), "the store is untouched")
  r = await runParley(["restore", "--data", srv.dataDir, path.join(path.dirname(file), "missing.db")])
  assert.equal(r.code, 2)

  // --force: the backup's contents, and nothing written after it.
  r = await runParley(["restore", "--data", srv.dataDir, "--force", file])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /restored .* \(verified\)/)
  assert.ok(!fs.existsSync(path.join(srv.dataDir, "parley.db-wal")), "the replaced store's WAL is gone")
  assert.deepEqual(fs.readdirSync(srv.dataDir).filter((f) => f.startsWith(".parley")), [], "no temporary file left")
  await srv.restart()
  const c = client(srv)
  expectStatus(await c.get(`/v1/conversations/${conv.id}`), 200)
  const docs = expectStatus(await c.get("/v1/documents/notes"), 200)
  assert.deepEqual(docs.items.map((d) => d.id).sort(), ["orig"], "the document written after the backup is gone")
  assert.equal(await srv.stop(), 0)
  await verifyOk(path.join(srv.dataDir, "parley.db"))

  // Into an empty (new) directory: no --force needed.
  const fresh = path.join(tmpDir(t), "new-data")
  r = await runParley(["restore", "--data", fresh, file])
  assert.equal(r.code, 0, r.stderr)
  await verifyOk(path.join(fresh, "parley.db"))
})

// ---- verify -------------------------------------------------------------------

/** Flip bytes (XOR 0xff) at each offset. */
function flipped(buf, offsets) {
  const out = Buffer.from(buf)
  for (const o of offsets) out[o] ^= 0xff
  return out
}

test("ops - verify: a clean store exits 0 with a line per check; flipped bytes exit 1 naming the problem", { skip: sqliteOnly("flips bytes in the database file"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  await populate(srv)
  expectStatus(await client(srv).post(`/v1/conversations`, { title: "PAGE-MARKER" }), 201)
  assert.equal((await createStream(srv.url, "chunky", "application/json")).status, 201)
  assert.equal((await append(srv.url, "chunky", '{"text":"CHUNK-MARKER-0123456789"}', "application/json")).status, 204)

  // While it runs: --data, and the default directory from PARLEY_DATA.
  let r = await runParley(["verify", "--data", srv.dataDir])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  for (const check of ["integrity", "streams", "conversations", "sessions", "snapshots", "idempotency"])
    assert.match(r.stdout, new RegExp(`^${check} +.*: ok$`, "m"), `a line for ${check}`)
  assert.match(r.stdout, /^OK: 0 problems found$/m)
  r = await runParley(["verify"], { env: { PARLEY_DATA: srv.dataDir } })
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(await srv.stop(), 0) // everything checkpointed into parley.db
  const db = fs.readFileSync(path.join(srv.dataDir, "parley.db"))
  const dir = tmpDir(t)

  // Bytes flipped inside a JSON chunk's data (every copy of the marker).
  const marks = []
  for (let i = db.indexOf("CHUNK-MARKER"); i >= 0; i = db.indexOf("CHUNK-MARKER", i + 1)) marks.push(i + 3, i + 4)
  assert.ok(marks.length > 0)
  fs.writeFileSync(path.join(dir, "chunk.db"), flipped(db, marks))
  r = await runParley(["verify", path.join(dir, "chunk.db")])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, /problem: stream chunky: the chunk at positions \[0, 1\) is not valid JSON/)
  assert.match(r.stdout, /^FAILED: \d+ problems? found$/m)

  // Bytes flipped in the header of a table page (the conversations' leaf).
  const at = db.indexOf("PAGE-MARKER")
  const pageSize = db.readUInt16BE(16) === 1 ? 65536 : db.readUInt16BE(16)
  const page = Math.floor(at / pageSize) * pageSize + (at < pageSize ? 100 : 0)
  fs.writeFileSync(path.join(dir, "page.db"), flipped(db, [page + 3, page + 4, page + 5, page + 6, page + 7]))
  r = await runParley(["verify", path.join(dir, "page.db")])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, /^integrity +whole database: PROBLEMS$/m)
  assert.match(r.stdout, /problem: .*Page \d+/)

  // Not a database at all; no database; usage.
  fs.writeFileSync(path.join(dir, "junk.db"), Buffer.alloc(8192, 0x41))
  r = await runParley(["verify", path.join(dir, "junk.db")])
  assert.notEqual(r.code, 0)
  r = await runParley(["verify", path.join(dir, "none.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /no database there/)
  r = await runParley(["verify", "--data", dir, path.join(dir, "chunk.db")])
  assert.equal(r.code, 2)
  r = await runParley(["verify", "--bogus"])
  assert.equal(r.code, 2)
})

test("ops - verify names a gap in a conversation's message seq and a stream tail past its chunks", { skip: sqliteOnly("edits the database file with sqlite3"), timeout: 60_000 }, async (t) => {
  const srv = await sqliteServer(t)
  const conv = await populate(srv)
  assert.equal(await srv.stop(), 0)
  const file = path.join(srv.dataDir, "parley.db")
  const sql = (q) => {
    const r = spawnSync("sqlite3", [file, q], { encoding: "utf8" })
    assert.equal(r.status, 0, r.stderr)
  }
  sql(`DELETE FROM chunks WHERE stream_id = (SELECT id FROM streams WHERE path = '_parley/conv/${conv.id}') AND start_pos = 1`)
  sql(`UPDATE streams SET tail = tail + 5 WHERE path = 's-x'`)
  sql(`UPDATE sessions SET status = 'bogus'`)
  const r = await runParley(["verify", file])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stdout, new RegExp(`stream _parley/conv/${conv.id}: positions \\[1, 2\\) are missing`))
  assert.match(r.stdout, /stream s-x: its tail is 7 but its chunks end at 2/)
  assert.match(r.stdout, /status 'bogus' is not a session state/)
})

test("ops - verify on PostgreSQL: a clean store exits 0 beside its server; a seq gap, a wrong tail, an illegal status are named and exit 1", { skip: pgOnly, timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const conv = await populate(srv)
  const psql = (sql) => {
    const r = spawnSync("psql", [srv.pgUrl, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8", timeout: 30_000 })
    assert.equal(r.status, 0, `psql ${sql}: ${r.stderr}`)
    return r.stdout.trim()
  }

  // Clean, while the server runs: a line per check, the schema at this build's version.
  let r = await runParley(["verify", "--store", srv.pgUrl])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  for (const check of ["integrity", "streams", "conversations", "sessions", "snapshots", "idempotency"])
    assert.match(r.stdout, new RegExp(`^${check} +.*: ok$`, "m"), `a line for ${check}`)
  assert.match(r.stdout, /^conversations +1 conversations, 3 messages: ok$/m)
  const [, version, mine] = /^schema +version (\d+) \(this parley writes (\d+)\)$/m.exec(r.stdout)
  assert.equal(version, mine, "a new database is at this build's version")
  assert.equal(psql("SELECT value FROM meta WHERE key = 'schema_version'"), mine)
  assert.match(r.stdout, /^OK: 0 problems found$/m)

  // With amcheck installed, its B-tree checks run too (and find nothing).
  psql("CREATE EXTENSION IF NOT EXISTS amcheck")
  t.after(() => spawnSync("psql", [srv.pgUrl, "-qAtc", "DROP EXTENSION IF EXISTS amcheck"]))
  r = await runParley(["verify", "--store", srv.pgUrl])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /^integrity +whole database: ok$/m)

  // Broken invariants.
  psql(`DELETE FROM chunks WHERE stream_id = (SELECT id FROM streams WHERE path = '_parley/conv/${conv.id}') AND start_pos = 1`)
  psql("UPDATE streams SET tail = tail + 5 WHERE path = 's-x'")
  psql("UPDATE sessions SET status = 'bogus'")
  r = await runParley(["verify", "--store", srv.pgUrl])
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.match(r.stdout, new RegExp(`stream _parley/conv/${conv.id}: positions \\[1, 2\\) are missing`))
  assert.match(r.stdout, /stream s-x: its tail is 7 but its chunks end at 2/)
  assert.match(r.stdout, /status 'bogus' is not a session state/)
  assert.match(r.stdout, /^FAILED: \d+ problems? found$/m)

  // A schema from the future: exit 2, naming it; a database without Parley's schema: exit 2.
  psql("UPDATE meta SET value = (value::int + 1000)::text WHERE key = 'schema_version'")
  r = await runParley(["verify", "--store", srv.pgUrl])
  assert.equal(r.code, 2, r.stdout + r.stderr)
  assert.match(r.stderr, /schema \(version \d+\) is newer than this build/)
  assert.match(r.stderr, /written by a newer parley/)
  psql("DELETE FROM meta WHERE key = 'schema_version'")
  r = await runParley(["verify", "--store", srv.pgUrl])
  assert.equal(r.code, 2, r.stdout + r.stderr)
  assert.match(r.stderr, /no database there/)
})

test("ops - backup and restore of a live PostgreSQL store are refused with their messages", { skip: pgOnly, timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  await populate(srv)
  let r = await runParley(["backup", "--store", srv.pgUrl, path.join(tmpDir(t), "x.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /pg_dump/)
  r = await runParley(["restore", "--store", srv.pgUrl, path.join(tmpDir(t), "x.db")])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /pg_restore/)
})

// ---- schema versions --------------------------------------------------------------

test("ops - a v1 store made by an earlier build serves the same data, verifies, and a newer store is refused", { skip: sqliteOnly("a v1 SQLite fixture"), timeout: 60_000 }, async (t) => {
  const dir = tmpDir(t, "ops-v1")
  fs.copyFileSync(FIXTURE_V1, path.join(dir, "parley.db"))
  fs.chmodSync(path.join(dir, "parley.db"), 0o600)
  const srv = await sqliteServer(t, [], dir)
  // The upgrade is logged step by step (a new store logs none: see below).
  assert.match(srv.stderr(), /schema migrated from version 1 to 2/)
  const fresh = await sqliteServer(t, [], tmpDir(t, "ops-fresh"))
  assert.doesNotMatch(fresh.stderr(), /schema migrated/, "a new store is created, not migrated")
  const c = client(srv)
  const convs = expectStatus(await c.get("/v1/conversations"), 200)
  assert.equal(convs.items.length, 1)
  assert.equal(convs.items[0].title, "fixture conversation")
  assert.equal(convs.items[0].message_count, 3)
  const msgs = expectStatus(await c.get(`/v1/conversations/${convs.items[0].id}/messages?limit=10`), 200)
  assert.deepEqual(msgs.items.map((m) => m.content), ["message one", "message two", "message three"])
  assert.deepEqual((await readAll(srv.url, "fixture/json")).json(), [{ n: 1 }, { n: 2 }])
  assert.equal((await readAll(srv.url, "fixture/bytes")).text, "hello fixture")
  const doc = expectStatus(await c.get("/v1/documents/notes/n1"), 200)
  assert.equal(doc.data.text, "fixture note")
  // The migration indexed what was stored: the old messages and title are found by search.
  const found = expectStatus(await c.get("/v1/search?q=message&limit=10"), 200)
  assert.deepEqual(found.items.map((h) => h.seq).sort(), [1, 2, 3])
  assert.deepEqual(found.items.map((h) => h.message_id).sort(), msgs.items.map((m) => m.id).sort())
  assert.deepEqual(expectStatus(await c.get("/v1/search?q=two"), 200).items.map((h) => h.seq), [2])
  assert.deepEqual(expectStatus(await c.get("/v1/search?q=fixture"), 200).items.map((h) => h.kind), ["title"])
  // ... and still takes writes.
  expectStatus(await c.post(`/v1/conversations/${convs.items[0].id}/messages`, { role: "user", content: "message four" }), 201)
  assert.deepEqual(expectStatus(await c.get("/v1/search?q=four"), 200).items.map((h) => h.seq), [4])
  assert.equal(await srv.stop(), 0)
  const report = await verifyOk(path.join(dir, "parley.db"))
  // Served, it was migrated to this build's version (every step after v1).
  assert.match(report, /^schema +version (\d+) \(this parley writes \1\)$/m)
  const version = spawnSync("sqlite3", [path.join(dir, "parley.db"), "SELECT value FROM meta WHERE key = 'schema_version'"], { encoding: "utf8" })
  assert.ok(Number(version.stdout.trim()) >= 1, `the version is recorded: ${version.stdout}`)

  // A store from the future: refused by serve (exit 1), verify and backup (exit 2); untouched.
  spawnSync("sqlite3", [path.join(dir, "parley.db"), "UPDATE meta SET value = '999' WHERE key = 'schema_version'"])
  const before = fs.readFileSync(path.join(dir, "parley.db"))
  const r = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", dir])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /schema is version 999, newer than this parley's \(version \d+\)/)
  assert.match(r.stderr, /refusing to open the store/)
  assert.ok(before.equals(fs.readFileSync(path.join(dir, "parley.db"))), "a newer store is not touched")
  for (const args of [["verify", "--data", dir], ["backup", "--data", dir, path.join(dir, "b.db")]]) {
    const v = await runParley(args)
    assert.equal(v.code, 2, `${args[0]}: ${v.stderr}`)
    assert.match(v.stderr, /newer parley/)
  }
})

// ---- help -------------------------------------------------------------------

test("ops - backup, restore and verify have --help, and the overview lists them", { timeout: 30_000 }, async () => {
  for (const cmd of ["backup", "restore", "verify"]) {
    for (const args of [[cmd, "--help"], ["help", cmd]]) {
      const r = await runParley(args)
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`)
      assert.match(r.stdout, new RegExp(`^usage: parley ${cmd} `))
      assert.match(r.stdout, /Exit status:/)
    }
  }
  const r = await runParley(["--help"])
  for (const cmd of ["backup", "restore", "verify"]) assert.match(r.stdout, new RegExp(`^ {2}${cmd}\\b`, "m"))
})
