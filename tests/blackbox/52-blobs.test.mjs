// Blobs: POST /v1/blobs (raw bytes, streamed to the store in parts, the id
// is the SHA-256, deduplicated per owner), GET with Range / ETag / 304 and
// immutable caching, references from messages and documents, garbage
// collection after --blob-grace, the size limit (413) and the quota (507),
// Idempotency-Key, events, ownership (404), signed URLs and public
// snapshots, and parley verify over the blob rows.
import assert from "node:assert/strict"
import crypto from "node:crypto"
import { spawnSync } from "node:child_process"
import http from "node:http"
import net from "node:net"
import { test } from "node:test"

import { client, expectError, expectStatus, readEvents, sleep, userToken } from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import fs from "node:fs"
import { TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-blobs-1"
const SECRET = "test-jwt-secret-blobs-1"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]

const sha = (buf) => crypto.createHash("sha256").update(buf).digest("hex")

/** Upload bytes as user c (a client): the response. */
function upload(c, bytes, contentType = "application/octet-stream", headers = {}) {
  return c.call("POST", "/v1/blobs", { body: bytes, headers: { "Content-Type": contentType, ...headers } })
}

/** Poll fn until it returns a truthy value, at most ms. */
async function until(fn, ms, what) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`)
    await sleep(100)
  }
}

async function writerWrites(srv) {
  const res = await request(srv.url, "/metrics", { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })
  const m = /^parley_writer_writes_total (\d+)$/m.exec(res.text)
  assert.ok(m, "parley_writer_writes_total in /metrics")
  return Number(m[1])
}

function verifyArgs(srv) {
  return srv.pgUrl ? ["verify", "--store", srv.pgUrl] : ["verify", "--data", srv.dataDir]
}

test("blobs - upload answers 201 {id, size, content_type, created_at}; the id is the SHA-256; download, Range, ETag/304, caching", async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const bytes = crypto.randomBytes(700_000) // three parts
  const res = await upload(alice, bytes, "image/png")
  const blob = expectStatus(res, 201, "upload")
  assert.deepEqual(Object.keys(blob).sort(), ["content_type", "created_at", "id", "size"])
  assert.equal(blob.id, sha(bytes))
  assert.equal(blob.size, bytes.length)
  assert.equal(blob.content_type, "image/png")
  assert.equal(res.headers.location, `/v1/blobs/${blob.id}`)

  const get = await alice.get(`/v1/blobs/${blob.id}`)
  assert.equal(get.status, 200)
  assert.equal(get.headers["content-type"], "image/png")
  assert.equal(Number(get.headers["content-length"]), bytes.length)
  assert.ok(get.body.equals(bytes), "the bytes come back as uploaded")
  assert.equal(get.headers.etag, `"${blob.id}"`)
  assert.match(get.headers["cache-control"], /immutable/)
  assert.match(get.headers["cache-control"], /max-age=31536000/)
  assert.equal(get.headers["accept-ranges"], "bytes")

  const nm = await alice.get(`/v1/blobs/${blob.id}`, { headers: { "If-None-Match": `"${blob.id}"` } })
  assert.equal(nm.status, 304)
  assert.equal(nm.body.length, 0)

  // A range across the first part boundary (256 KiB).
  const from = 262_140, to = 262_150
  const part = await alice.get(`/v1/blobs/${blob.id}`, { headers: { Range: `bytes=${from}-${to}` } })
  assert.equal(part.status, 206)
  assert.equal(part.headers["content-range"], `bytes ${from}-${to}/${bytes.length}`)
  assert.ok(part.body.equals(bytes.subarray(from, to + 1)))
  const suffix = await alice.get(`/v1/blobs/${blob.id}`, { headers: { Range: "bytes=-100" } })
  assert.equal(suffix.status, 206)
  assert.ok(suffix.body.equals(bytes.subarray(bytes.length - 100)))
  const open = await alice.get(`/v1/blobs/${blob.id}`, { headers: { Range: "bytes=699990-" } })
  assert.equal(open.status, 206)
  assert.ok(open.body.equals(bytes.subarray(699_990)))
  const bad = await alice.get(`/v1/blobs/${blob.id}`, { headers: { Range: `bytes=${bytes.length}-` } })
  expectError(bad, 416, "range_not_satisfiable")
  assert.equal(bad.headers["content-range"], `bytes */${bytes.length}`)
  const head = await alice.head(`/v1/blobs/${blob.id}`)
  assert.equal(head.status, 200)
  assert.equal(Number(head.headers["content-length"]), bytes.length)

  // The same bytes again: the blob the owner has, 200, nothing new.
  const again = await upload(alice, bytes, "image/png")
  assert.deepEqual(expectStatus(again, 200, "dedup"), blob)

  expectError(await upload(alice, Buffer.alloc(0)), 400, "empty_blob")
  expectError(await alice.get(`/v1/blobs/${"0".repeat(64)}`), 404, "not_found")
  expectError(await alice.get("/v1/blobs/not-an-id"), 404, "not_found")
  expectError(await client(srv, null).get(`/v1/blobs/${blob.id}`), 401, "unauthorized")
  expectError(await upload(client(srv, null), bytes), 401, "unauthorized")
  expectError(await alice.call("POST", "/v1/blobs", { body: "x", headers: { "Transfer-Encoding": "chunked" } }), 411, "length_required")
})

/**
 * Send a request on a raw socket: head, then the body in two steps with a
 * pause between (the server has the head and the first part in hand before
 * the rest comes), then a second request on the same connection. Resolves
 * { text, error }: everything read until the server closed, and any socket
 * error.
 */
function uploadInTwoSteps(port, head, body, pauseMs, next) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1")
    let text = ""
    let error = null
    s.setEncoding("latin1")
    s.on("data", (d) => (text += d))
    s.on("error", (e) => (error = e.code || e.message))
    s.on("close", () => resolve({ text, error }))
    s.on("connect", async () => {
      s.write(head)
      s.write(body.subarray(0, 64 * 1024))
      await sleep(pauseMs)
      if (!s.destroyed) s.write(body.subarray(64 * 1024))
      await sleep(pauseMs)
      if (!s.destroyed) s.end(next)
    })
  })
}

test("blobs - an upload refused before its body is read still gets its answer: the rest of the body is read, not reset", async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const port = Number(new URL(srv.url).port)
  const body = crypto.randomBytes(700_000)
  const next = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
  // No token: refused (401) as soon as the headers are in, while the client
  // is still sending. The answer waits for the rest of the body, so the
  // client reads it (not a reset), and the connection goes on.
  const head = `POST /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${body.length}\r\n\r\n`
  const r = await uploadInTwoSteps(port, head, body, 300, next)
  assert.equal(r.error, null, `no socket error; read: ${r.text.slice(0, 300)}`)
  assert.match(r.text, /^HTTP\/1\.1 401 /)
  assert.match(r.text, /"code":"unauthorized"/)
  assert.match(r.text, /HTTP\/1\.1 200 OK[\s\S]*$/, "the next request on the connection is answered")
  // Over the quota: refused (507) from the declared length, likewise.
  const small = await startServer({ t, args: [...AUTH_ARGS, "--blob-quota-bytes", "1000"] })
  const auth = `Authorization: Bearer ${userToken("alice", SECRET)}\r\n`
  const q = await uploadInTwoSteps(Number(new URL(small.url).port), head.replace("Host: x\r\n", `Host: x\r\n${auth}`), body, 300, next)
  assert.equal(q.error, null, `no socket error; read: ${q.text.slice(0, 300)}`)
  assert.match(q.text, /^HTTP\/1\.1 507 /)
  assert.match(q.text, /"code":"quota_exceeded"/)
  // A body too large to be worth reading is answered and the connection
  // closed at once (nothing waits for 400 MB).
  const huge = head.replace(`Content-Length: ${body.length}`, "Content-Length: 400000000")
  const h = await uploadInTwoSteps(port, huge, body, 300, next)
  assert.match(h.text, /^HTTP\/1\.1 401 /, `read: ${h.text.slice(0, 300)}`)
  assert.doesNotMatch(h.text, /HTTP\/1\.1 200 OK/, "nothing after it on the connection is served")
})

test("blobs - parley backup holds the blobs: the copy verifies them and serves them", { skip: TEST_PG_URL ? "parley backup is SQLite's" : false, timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const bytes = crypto.randomBytes(300_000)
  const blob = expectStatus(await upload(alice, bytes, "image/webp"), 201)
  const file = `${srv.dataDir}/copy.db`
  const b = await runParley(["backup", "--data", srv.dataDir, file], { timeoutMs: 30_000 })
  assert.equal(b.code, 0, b.stdout + b.stderr)
  const v = await runParley(["verify", file], { timeoutMs: 30_000 })
  assert.equal(v.code, 0, v.stdout + v.stderr)
  assert.match(v.stdout, /^blobs +1 blobs, 2 parts, 0 references: ok$/m)
  // Bytes changed behind the store's back are reported, not served as the id.
  const bad = `${srv.dataDir}/bad.db`
  fs.copyFileSync(file, bad)
  const sq = spawnSync("sqlite3", [bad, "UPDATE blob_parts SET data = zeroblob(length(data)) WHERE n = 1"], { encoding: "utf8" })
  assert.equal(sq.status, 0, sq.stderr)
  const vb = await runParley(["verify", bad], { timeoutMs: 30_000 })
  assert.equal(vb.code, 1, vb.stdout + vb.stderr)
  assert.match(vb.stdout, new RegExp(`problem: blob ${blob.id} of 'alice': the SHA-256 of its bytes is [0-9a-f]{64}`))
  const other = await startServer({ t, args: [...AUTH_ARGS, "--store", `sqlite:${file}`] })
  const got = await client(other, alice.token).get(`/v1/blobs/${blob.id}`)
  assert.equal(got.status, 200)
  assert.ok(got.body.equals(bytes), "the copy serves the same bytes")
})

test("blobs - another user's blob id answers 404; equal bytes are each owner's own blob", async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const bytes = crypto.randomBytes(1000)
  const a = expectStatus(await upload(alice, bytes), 201)
  expectError(await bob.get(`/v1/blobs/${a.id}`), 404, "not_found")
  assert.equal((await bob.head(`/v1/blobs/${a.id}`)).status, 404)
  expectError(await bob.post(`/v1/blobs/${a.id}/url`, {}), 404, "not_found")
  // A message of bob's cannot reference alice's blob.
  const conv = expectStatus(await bob.post("/v1/conversations", { title: "b" }), 201)
  const msg = await bob.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "blob", id: a.id }] })
  const err = expectError(msg, 400, "blob_not_found")
  assert.equal(err.details.id, a.id)
  const b = expectStatus(await upload(bob, bytes), 201, "bob's own copy")
  assert.equal(b.id, a.id)
  expectStatus(await bob.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "blob", id: b.id }] }), 201)
})

test("blobs - a large upload is written part by part while it arrives (bounded memory)", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const token = userToken("alice", SECRET)
  const total = 6 * 1024 * 1024
  const hash = crypto.createHash("sha256")
  const before = await writerWrites(srv)
  const u = new URL(srv.url)
  let midWrites = 0
  const res = await new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method: "POST", path: "/v1/blobs", headers: { Authorization: `Bearer ${token}`, "Content-Type": "video/mp4", "Content-Length": String(total) } },
      (r) => {
        const chunks = []
        r.on("data", (c) => chunks.push(c))
        r.on("end", () => resolve({ status: r.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) }))
      },
    )
    req.on("error", reject)
    ;(async () => {
      // 1 MiB at a time.
      for (let sent = 0; sent < total; sent += 1 << 20) {
        const chunk = crypto.randomBytes(1 << 20)
        hash.update(chunk)
        req.write(chunk)
        if (sent === 2 << 20) {
          // Half-way (3 MiB sent, the rest held back): the server writes
          // the parts it has while the body is still incomplete.
          midWrites = await until(
            async () => {
              const n = (await writerWrites(srv)) - before
              return n >= 8 ? n : 0
            },
            20_000,
            "8 parts written before the body ended",
          )
        }
      }
      req.end()
    })().catch(reject)
  })
  assert.equal(res.status, 201, JSON.stringify(res.body))
  assert.equal(res.body.size, total)
  assert.equal(res.body.id, hash.digest("hex"))
  assert.ok(midWrites >= 8, `at least 8 parts (2 MiB) written before the body ended; saw ${midWrites} writes`)
  const get = await client(srv, token).get(`/v1/blobs/${res.body.id}`, { timeoutMs: 30_000 })
  assert.equal(get.status, 200)
  assert.equal(sha(get.body), res.body.id)
  const v = await runParley(verifyArgs(srv), { timeoutMs: 30_000 })
  assert.equal(v.code, 0, v.stdout + v.stderr)
  assert.match(v.stdout, /blobs/)
})

// Peak RSS is only a fair measure on PostgreSQL: on SQLite the writer's page
// cache (64 MiB) fills with the parts' pages whatever the upload path does.
test("blobs - a 16 MiB upload and download leave the server's peak RSS within 8 MiB", { skip: TEST_PG_URL ? false : "peak RSS is measured on PostgreSQL (SQLite's page cache grows with any write)", timeout: 120_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, "utf8"))[1]) * 1024
  expectStatus(await upload(alice, crypto.randomBytes(4096)), 201) // warm: a reader, a part buffer
  const before = hwm()
  const bytes = crypto.randomBytes(16 << 20)
  const blob = expectStatus(await upload(alice, bytes), 201)
  const get = await alice.get(`/v1/blobs/${blob.id}`, { timeoutMs: 60_000 })
  assert.equal(sha(get.body), blob.id)
  const grew = hwm() - before
  assert.ok(grew < 8 << 20, `peak RSS grew by ${grew} bytes for a 16 MiB blob`)
})

test("blobs - --blob-max-bytes answers 413 blob_too_large; --blob-quota-bytes 507 quota_exceeded", async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--blob-max-bytes", "300000", "--blob-quota-bytes", "500000"] })
  const alice = client(srv, userToken("alice", SECRET))
  let err = expectError(await upload(alice, crypto.randomBytes(300_001)), 413, "blob_too_large")
  assert.equal(err.details.limit_bytes, 300_000)
  // Without a Content-Length (chunked): 411, nothing read.
  const u = new URL(srv.url)
  const chunked = await new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method: "POST", path: "/v1/blobs", headers: { Authorization: `Bearer ${alice.token}` } },
      (r) => {
        const chunks = []
        r.on("data", (c) => chunks.push(c))
        r.on("end", () => resolve({ status: r.statusCode, body: Buffer.concat(chunks).toString() }))
      },
    )
    req.on("error", reject)
    req.write(crypto.randomBytes(200_000))
    req.end(crypto.randomBytes(200_000))
  })
  assert.equal(chunked.status, 411, chunked.body)
  assert.equal(JSON.parse(chunked.body).error.code, "length_required")

  expectStatus(await upload(alice, crypto.randomBytes(300_000)), 201)
  err = expectError(await upload(alice, crypto.randomBytes(250_000)), 507, "quota_exceeded")
  assert.equal(err.details.quota_bytes, 500_000)
  expectStatus(await upload(alice, crypto.randomBytes(150_000)), 201, "within the quota")
  // The quota is per user.
  const bob = client(srv, userToken("bob", SECRET))
  expectStatus(await upload(bob, crypto.randomBytes(300_000)), 201)
})

test("blobs - Idempotency-Key: a retried upload is applied once; the key with other bytes is 422", async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const bytes = crypto.randomBytes(5000)
  const first = await upload(alice, bytes, "text/plain", { "Idempotency-Key": "up-1" })
  const blob = expectStatus(first, 201)
  const retry = await upload(alice, bytes, "text/plain", { "Idempotency-Key": "up-1" })
  assert.equal(retry.status, 201)
  assert.equal(retry.headers["idempotent-replayed"], "true")
  assert.deepEqual(retry.json(), blob)
  expectError(await upload(alice, crypto.randomBytes(10), "text/plain", { "Idempotency-Key": "up-1" }), 422, "idempotency_key_reused")
  const { events } = await readEvents(alice)
  assert.equal(events.filter((e) => e.type === "blob.created").length, 1, "one blob.created event")
  const ev = events.find((e) => e.type === "blob.created")
  assert.equal(ev.blob_id, blob.id)
  assert.equal(ev.data.size, 5000)
})

test("blobs - unreferenced blobs are collected after --blob-grace (blob.deleted); referenced ones stay until their last reference goes", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--blob-grace", "2s"] })
  const alice = client(srv, userToken("alice", SECRET))
  const loose = expectStatus(await upload(alice, crypto.randomBytes(100)), 201)
  const inMsg = expectStatus(await upload(alice, crypto.randomBytes(101)), 201)
  const inDoc = expectStatus(await upload(alice, crypto.randomBytes(102)), 201)
  const conv = expectStatus(await alice.post("/v1/conversations", { title: "pics" }), 201)
  expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "text", text: "look" }, { type: "blob", id: inMsg.id }] }), 201)
  expectStatus(await alice.put("/v1/documents/gallery/entry1", { title: "x", image: { type: "blob", id: inDoc.id } }), 201)
  expectError(await alice.put("/v1/documents/gallery/entry2", { image: { type: "blob", id: "f".repeat(64) } }), 400, "blob_not_found")
  expectError(await alice.put("/v1/documents/gallery/entry2", { image: { type: "blob", id: "nope" } }), 400, "invalid_blob_ref")

  await until(async () => (await alice.get(`/v1/blobs/${loose.id}`)).status === 404, 8000, "the loose blob collected")
  assert.equal((await alice.get(`/v1/blobs/${inMsg.id}`)).status, 200, "referenced by a message: kept")
  assert.equal((await alice.get(`/v1/blobs/${inDoc.id}`)).status, 200, "referenced by a document: kept")
  const { events } = await readEvents(alice)
  const deleted = events.filter((e) => e.type === "blob.deleted").map((e) => e.blob_id)
  assert.deepEqual(deleted, [loose.id])

  // The document stops referencing it: collected after the grace.
  expectStatus(await alice.put("/v1/documents/gallery/entry1", { title: "x" }), 200)
  expectStatus(await alice.del(`/v1/conversations/${conv.id}`), 204)
  await until(async () => (await alice.get(`/v1/blobs/${inDoc.id}`)).status === 404, 8000, "the document's old blob collected")
  await until(async () => (await alice.get(`/v1/blobs/${inMsg.id}`)).status === 404, 8000, "the deleted conversation's blob collected")
  const v = await runParley(verifyArgs(srv), { timeoutMs: 30_000 })
  assert.equal(v.code, 0, v.stdout + v.stderr)
})

test("blobs - public reads: a public snapshot's blobs and signed URLs, without a token; never a private id alone", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const anon = client(srv, null)
  const pic = crypto.randomBytes(4000)
  const other = crypto.randomBytes(4001)
  const a = expectStatus(await upload(alice, pic, "image/jpeg"), 201)
  const b = expectStatus(await upload(alice, other, "image/jpeg"), 201)
  const conv = expectStatus(await alice.post("/v1/conversations", { title: "share" }), 201)
  expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "blob", id: a.id }] }), 201)
  const pub = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}`, public: true }), 201)
  const priv = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)

  const r = await anon.get(`/v1/snapshots/${pub.id}/blobs/${a.id}`)
  assert.equal(r.status, 200)
  assert.ok(r.body.equals(pic))
  assert.match(r.headers["cache-control"], /^public/)
  expectError(await anon.get(`/v1/snapshots/${pub.id}/blobs/${b.id}`), 404, "not_found")
  expectError(await anon.get(`/v1/snapshots/${priv.id}/blobs/${a.id}`), 404, "not_found")
  expectError(await anon.get(`/v1/blobs/${a.id}`), 401, "unauthorized")
  assert.equal((await alice.get(`/v1/snapshots/${priv.id}/blobs/${a.id}`)).status, 200, "the owner reads a private snapshot's blob")
  // Revoked: gone.
  expectStatus(await alice.del(`/v1/snapshots/${pub.id}`), 204)
  expectError(await anon.get(`/v1/snapshots/${pub.id}/blobs/${a.id}`), 404, "not_found")

  // A signed URL.
  const signed = expectStatus(await alice.post(`/v1/blobs/${b.id}/url`, { expires_in: 60 }), 200)
  assert.match(signed.url, new RegExp(`^/v1/blobs/${b.id}\\?u=[A-Za-z0-9_-]+&exp=\\d+&sig=[A-Za-z0-9_-]{43}$`))
  const s = await anon.get(signed.url)
  assert.equal(s.status, 200)
  assert.ok(s.body.equals(other))
  const ranged = await anon.get(signed.url, { headers: { Range: "bytes=0-9" } })
  assert.equal(ranged.status, 206)
  expectError(await anon.get(signed.url.replace(/sig=./, "sig=A")), 404, "not_found")
  expectError(await anon.get(signed.url.replace(/exp=\d+/, (m) => `exp=${Number(m.slice(4)) + 1}`)), 404, "not_found")
  expectError(await anon.get(signed.url.replace(b.id, a.id)), 404, "not_found")
  const short = expectStatus(await alice.post(`/v1/blobs/${b.id}/url`, { expires_in: 1 }), 200)
  await sleep(2100)
  expectError(await anon.get(short.url), 410, "url_expired")
  expectError(await alice.post(`/v1/blobs/${b.id}/url`, { expires_in: 0 }), 400, "invalid_expires_in")
})

test("blobs - messages on a branch reference blobs as on main: an edit naming another user's blob is refused and leaves no branch; a branch's reference keeps its blob", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--blob-grace", "2s"] })
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const bobs = expectStatus(await upload(bob, crypto.randomBytes(64)), 201)
  const kept = expectStatus(await upload(alice, crypto.randomBytes(65)), 201)
  const conv = expectStatus(await alice.post("/v1/conversations", { title: "b" }), 201)
  const u1 = expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: "one" }), 201)
  // Refused as a whole: no branch, no message, the active branch unchanged.
  const bad = await alice.post(`/v1/conversations/${conv.id}/messages/${u1.id}/edit`, { content: [{ type: "blob", id: bobs.id }] })
  expectError(bad, 400, "blob_not_found")
  const branches = expectStatus(await alice.get(`/v1/conversations/${conv.id}/branches`), 200)
  assert.equal(branches.items.length, 1, "no branch was made by the refused edit")
  assert.equal(branches.active, "main")
  // An edit that references alice's own blob is stored on its branch.
  const ok = expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages/${u1.id}/edit`, { content: [{ type: "blob", id: kept.id }] }), 201)
  assert.ok(ok.branch && ok.branch !== "main")
  // A message posted to that branch naming bob's blob is refused too.
  const bad2 = await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "blob", id: bobs.id }], branch: ok.branch })
  expectError(bad2, 400, "blob_not_found")
  // Past the grace, the blob referenced only from the branch is still there.
  await new Promise((r) => setTimeout(r, 4500))
  const got = await alice.get(`/v1/blobs/${kept.id}`)
  assert.equal(got.status, 200, "the branch's reference keeps the blob")
})

test("blobs - reads racing the collector get the whole blob or 404, never a response cut short", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--blob-grace", "1s"] })
  const alice = client(srv, userToken("alice", SECRET))
  const blobs = []
  for (let i = 0; i < 24; i++) {
    const bytes = crypto.randomBytes(2000 + i)
    blobs.push({ bytes, id: expectStatus(await upload(alice, bytes), 201).id })
  }
  // Every blob is read over and over until the collector has taken it.
  let reads = 0
  await Promise.all(
    blobs.map(async ({ bytes, id }) => {
      const deadline = Date.now() + 30_000
      for (;;) {
        const got = await alice.get(`/v1/blobs/${id}`) // a reset connection throws and fails the test
        reads++
        if (got.status === 404) return
        assert.equal(got.status, 200)
        assert.ok(got.body.equals(bytes), "a 200 carries the whole blob")
        assert.ok(Date.now() < deadline, "collected within 30 s")
      }
    }),
  )
  assert.ok(reads > blobs.length, `reads: ${reads}`)
})

test("blobs - GET /v1/blobs lists the caller's blobs newest first, paged by cursor, with referenced; never another user's; bad limit/cursor 400; the admin as a user", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--rate-limit-writes", "off"] })
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  assert.deepEqual(expectStatus(await alice.get("/v1/blobs"), 200), { items: [], next_cursor: null })

  const mine = []
  for (let i = 0; i < 7; i++) mine.push(expectStatus(await upload(alice, crypto.randomBytes(50 + i), i % 2 ? "image/png" : "text/plain"), 201))
  const bobs = expectStatus(await upload(bob, crypto.randomBytes(60)), 201)
  // Bob's copy of one of alice's blobs is his own blob, never listed for alice.
  const bytes = Buffer.from("shared bytes")
  const shared = expectStatus(await upload(bob, bytes), 201)
  const newest = expectStatus(await upload(alice, bytes), 201)
  mine.push(newest)
  assert.equal(newest.id, shared.id)

  // Paging over more than limit blobs: newest first, each once, the upload's JSON plus referenced.
  const seen = []
  let cursor = null, pages = 0
  do {
    const page = expectStatus(await alice.get(`/v1/blobs?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`), 200)
    assert.deepEqual(Object.keys(page).sort(), ["items", "next_cursor"])
    assert.ok(page.items.length <= 3)
    seen.push(...page.items)
    cursor = page.next_cursor
    pages++
  } while (cursor)
  assert.equal(pages, 3)
  const expected = [...mine].reverse().map((b) => ({ ...b, referenced: false }))
  assert.deepEqual(seen, expected)
  assert.ok(!seen.some((b) => b.id === bobs.id), "another user's blob is never listed")
  const bobList = expectStatus(await bob.get("/v1/blobs"), 200)
  assert.deepEqual(bobList.items.map((b) => b.id), [shared.id, bobs.id])

  // A message names one: referenced flips to true, for alice only.
  const conv = expectStatus(await alice.post("/v1/conversations", { title: "pics" }), 201)
  expectStatus(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: [{ type: "blob", id: newest.id }] }), 201)
  const after = expectStatus(await alice.get("/v1/blobs?limit=100"), 200)
  assert.deepEqual(after.items.filter((b) => b.referenced).map((b) => b.id), [newest.id])
  assert.equal(expectStatus(await bob.get("/v1/blobs"), 200).items.find((b) => b.id === shared.id).referenced, false)

  // The admin key lists its own (@admin) blobs, or a user's with Parley-User.
  const admin = client(srv, ADMIN_KEY)
  assert.deepEqual(expectStatus(await admin.get("/v1/blobs"), 200).items, [])
  const asBob = client(srv, ADMIN_KEY, { headers: { "Parley-User": "bob" } })
  assert.deepEqual(expectStatus(await asBob.get("/v1/blobs"), 200).items.map((b) => b.id), [shared.id, bobs.id])

  for (const limit of ["0", "abc", "-1", "1.5", ""])
    expectError(await alice.get(`/v1/blobs?limit=${limit}`), 400, "invalid_limit", `limit=${limit}`)
  const snapCursor = expectStatus(await alice.get("/v1/conversations?limit=1"), 200).next_cursor
  for (const c of ["zzz", "not-a-cursor", "%00", snapCursor ? encodeURIComponent(snapCursor) : "x"])
    expectError(await alice.get(`/v1/blobs?cursor=${c}`), 400, "invalid_cursor", `cursor=${c}`)
  expectError(await alice.call("DELETE", "/v1/blobs"), 405)
})

// DESIGN.md: an upload is applied exactly once across a crash. The server
// is killed (SIGKILL) while an upload's body is half sent, after some of its
// 256 KiB parts were committed: after the restart no blob of it is listed
// or readable, and the retry with the same Idempotency-Key stores it once,
// byte for byte; a second retry replays the same blob.
test("blobs - kill -9 mid-upload: nothing half-stored is visible; the retry with its key stores the blob once", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const token = userToken("alice", SECRET)
  const alice = client(srv, token)
  const bytes = crypto.randomBytes(1_200_000) // five parts
  const before = await writerWrites(srv)

  // Send the headers and about 60% of the body, then stall.
  const req = http.request({
    host: "127.0.0.1",
    port: srv.port,
    method: "POST",
    path: "/v1/blobs",
    headers: {
      Authorization: `Bearer ${token}`,
      "Content-Type": "application/octet-stream",
      "Content-Length": String(bytes.length),
      "Idempotency-Key": "crash-up-1",
    },
  })
  req.on("error", () => {}) // the server goes away under it
  req.write(bytes.subarray(0, 720_000))
  // At least two parts are committed before the kill.
  await until(async () => (await writerWrites(srv)) >= before + 2, 10_000, "two parts committed")
  await srv.kill9()
  req.destroy()
  await srv.restart()

  const listed = expectStatus(await alice.get("/v1/blobs"), 200, "list after the crash")
  assert.deepEqual(listed.items, [], "a half-sent upload is not a blob")

  const first = expectStatus(await upload(alice, bytes, "application/octet-stream", { "Idempotency-Key": "crash-up-1" }), 201, "retry after the crash")
  assert.equal(first.id, sha(bytes))
  assert.equal(first.size, bytes.length)
  const got = await alice.get(`/v1/blobs/${first.id}`)
  assert.equal(got.status, 200)
  assert.ok(got.body.equals(bytes), "the stored bytes are the uploaded ones")
  const again = expectStatus(await upload(alice, bytes, "application/octet-stream", { "Idempotency-Key": "crash-up-1" }), 201, "second retry")
  assert.equal(again.id, first.id)
  const after = expectStatus(await alice.get("/v1/blobs"), 200, "list after the retries")
  assert.equal(after.items.length, 1, "one blob")
  assert.equal(after.items[0].id, first.id)
})
