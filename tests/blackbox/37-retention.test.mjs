// Retention and growth: `--feed-retention` trims the change feeds of events
// older than the retention (a read before the retained start is 410 with the
// earliest offset, PROTOCOL.md's answer for data past retention), and the
// store's size stays bounded under a steady create/delete workload.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import path from "node:path"
import { test } from "node:test"

import { client, expectError, expectStatus, openSse, readEvents, sleep, userToken } from "./lib/api.mjs"
import { offsetAt, positionOf } from "./lib/http.mjs"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-retention-1"
const SECRET = "test-jwt-secret-retention-1"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]

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

test("retention - feed events older than --feed-retention are gone, newer ones stay", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--feed-retention", "4s"] })
  const alice = client(srv, userToken("alice", SECRET))
  const admin = client(srv, ADMIN_KEY)
  for (let i = 0; i < 3; i++) expectStatus(await alice.put(`/v1/documents/notes/old${i}`, { i }), 201)
  const first = await readEvents(alice)
  assert.equal(first.events.length, 3)
  // A live reader, following from the tail before the trim.
  const sse = openSse(srv.port, `/v1/events?offset=${first.next}&live=sse`, { Authorization: `Bearer ${alice.token}` })
  t.after(() => sse.close())
  await sse.waitFor((s) => s.events.some((e) => e.type === "control"), 5000, "the live reader's first control event")

  await sleep(5500) // the three events are now past the retention
  for (let i = 0; i < 2; i++) expectStatus(await alice.put(`/v1/documents/notes/new${i}`, { i }), 201)
  // The maintenance tick (about once a second) removes the old events.
  const now = await until(
    async () => {
      const r = await readEvents(alice)
      return r.events.length === 2 ? r : null
    },
    3000,
    "the old events trimmed",
  )
  assert.deepEqual(
    now.events.map((e) => e.document.id),
    ["new0", "new1"],
    "offset=-1 starts at the first retained event",
  )
  assert.equal(positionOf(now.next), 5, "offsets never move: the next offset still counts every event")

  // A read before the retained start: 410 with the earliest offset.
  for (const off of ["0000000000000000_0000000000000000", offsetAt(2)]) {
    const err = expectError(await alice.get(`/v1/events?offset=${off}`), 410, "offset_gone", `read at ${off}`)
    assert.equal(err.details.earliest_offset, offsetAt(3))
    const lp = await alice.get(`/v1/events?offset=${off}&live=long-poll`)
    expectError(lp, 410, "offset_gone", "long-poll before the start")
  }
  // From the earliest offset: the retained events.
  const rest = await readEvents(alice, offsetAt(3))
  assert.deepEqual(rest.events.map((e) => e.document.id), ["new0", "new1"])
  // The feed of all users is trimmed too.
  const all = await admin.get("/v1/events?offset=-1")
  assert.deepEqual(expectStatus(all, 200).map((e) => e.document.id), ["new0", "new1"])
  expectError(await admin.get(`/v1/events?offset=${offsetAt(0)}`), 410, "offset_gone", "feed of all before its start")

  // The live reader kept working: it got the new events.
  await sse.waitFor((s) => s.messages().length >= 2, 5000, "the live reader sees the new events")
  assert.deepEqual(sse.messages().map((e) => e.document.id), ["new0", "new1"])
  expectStatus(await alice.put("/v1/documents/notes/new2", { i: 2 }), 201)
  await sse.waitFor((s) => s.messages().length >= 3, 5000, "the live reader sees a later event")
})

test("retention - without --feed-retention every event is kept", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  expectStatus(await alice.put("/v1/documents/notes/a", { i: 1 }), 201)
  await sleep(2500)
  const r = await readEvents(alice, offsetAt(0))
  assert.equal(r.events.length, 1)
})

test("retention - --feed-retention rejects a bad duration", { timeout: 30_000 }, async (t) => {
  await assert.rejects(startServer({ t, args: ["--feed-retention", "soon"] }))
})

/** Run fn(i) for i in [0, n), `width` at a time. */
async function inParallel(n, width, fn) {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++)
    }),
  )
}

/** The store's size in bytes: the SQLite database file (the WAL is bounded
 * by the checkpointer and measured apart), or pg_database_size after a
 * VACUUM (what autovacuum does, at once). */
function storeBytes(srv) {
  if (TEST_PG_URL) {
    const out = execFileSync("psql", ["-X", "-qAt", srv.pgUrl, "-c", "VACUUM", "-c", "SELECT pg_database_size(current_database())"])
    return Number(out.toString().trim().split("\n").pop())
  }
  return fs.statSync(path.join(srv.dataDir, "parley.db")).size
}

const ROUNDS = 20
const PER_ROUND = 200

test("retention - the store stays bounded under steady create/delete churn", { timeout: 300_000 }, async (t) => {
  const srv = await startServer({ t, args: [...AUTH_ARGS, "--feed-retention", "1s"] })
  const alice = client(srv, userToken("alice", SECRET))
  const payload = { text: "x".repeat(2000) } // 2 KB a message, 10 KB a stream
  const sizes = []
  for (let round = 0; round < ROUNDS; round++) {
    await inParallel(PER_ROUND, 16, async (i) => {
      const s = `/v1/stream/churn/${round}/${i}`
      expectStatus(await alice.call("PUT", s, { headers: { "Content-Type": "application/json" } }), 201)
      expectStatus(await alice.post(s, [payload, payload, payload, payload, payload]), 204)
      expectStatus(await alice.put(`/v1/documents/churn/d${i}`, payload), 201)
    })
    await inParallel(PER_ROUND, 16, async (i) => {
      expectStatus(await alice.del(`/v1/stream/churn/${round}/${i}`), 204)
      expectStatus(await alice.del(`/v1/documents/churn/d${i}`), 204)
    })
    await sleep(2500) // past the retention, and a checkpoint or two
    sizes.push(storeBytes(srv))
  }
  t.diagnostic(`store bytes after each round: ${sizes.join(" ")}`)
  // After the first rounds the freed space is reused: no steady growth.
  const settled = Math.max(...sizes.slice(0, 5))
  const last = Math.max(...sizes.slice(ROUNDS - 5))
  assert.ok(last <= settled * 1.25 + 512 * 1024, `the store grew from ${settled} to ${last} bytes: ${sizes.join(" ")}`)
  // The feed holds only the events of the last moments.
  const ev = await readEvents(alice)
  assert.ok(ev.events.length < 2 * PER_ROUND, `${ev.events.length} events left in the feed`)
})

test("retention - a deleted document's tombstone does not keep its content", { timeout: 120_000 }, async (t) => {
  const srv = await startServer({ t, args: AUTH_ARGS })
  const alice = client(srv, userToken("alice", SECRET))
  const big = { text: "y".repeat(100_000) } // 100 KB each
  expectStatus(await alice.put("/v1/documents/warm/up", big), 201) // the schema and first pages
  expectStatus(await alice.del("/v1/documents/warm/up"), 204)
  await sleep(1500)
  const before = storeBytes(srv)
  await inParallel(100, 8, async (i) => {
    const created = expectStatus(await alice.put(`/v1/documents/big/d${i}`, big), 201)
    expectStatus(await alice.del(`/v1/documents/big/d${i}`), 204)
    expectStatus(await alice.get(`/v1/documents/big/d${i}`), 404)
    assert.equal(created.version, 1)
  })
  // A re-created document still goes on counting versions.
  const again = expectStatus(await alice.put("/v1/documents/big/d0", { v: 1 }), 201)
  assert.equal(again.version, 3)
  // The event of the deletion still carries the deleted content's checksum.
  const ev = (await readEvents(alice)).events.filter((e) => e.document.id === "d1")
  assert.deepEqual(ev.map((e) => e.type), ["document.created", "document.deleted"])
  assert.equal(ev[1].data.checksum, ev[0].data.checksum)
  await sleep(1500) // a checkpoint
  const after = storeBytes(srv)
  t.diagnostic(`store bytes before ${before}, after 100 documents of 100 KB created and deleted: ${after} (the feed keeps each creation's content until --feed-retention)`)
  // The tombstones hold no content: the documents' rows are small. (The
  // feed's document.created events carry the content, so the state can be
  // rebuilt from the log; --feed-retention is what lets those go.)
  const query = "SELECT coalesce(sum(length(data)), 0) FROM documents WHERE collection = 'big'"
  const rowBytes = TEST_PG_URL
    ? Number(execFileSync("psql", ["-X", "-qAt", srv.pgUrl, "-c", query]).toString().trim())
    : Number(execFileSync("sqlite3", [path.join(srv.dataDir, "parley.db"), query]).toString().trim())
  assert.ok(rowBytes < 1000, `the documents' rows hold ${rowBytes} bytes after 100 deletes and one small re-creation`)
})
