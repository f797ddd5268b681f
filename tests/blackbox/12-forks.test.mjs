// Forks: the fork-depth limit (64 forks from the stream a chain starts at),
// reads across a chain at the limit, sub-offset forks on a deep chain, a
// chain thousands deep left in the store by an older version, and the
// server staying up through it all and after a restart.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import path from "node:path"
import { test } from "node:test"

import { expectError } from "./lib/api.mjs"
import { offsetAt, positionOf, request } from "./lib/http.mjs"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"

const FORK_DEPTH_MAX = 64 // README, "Decisions the protocol leaves to the server"
const JSON_TYPE = { "Content-Type": "application/json" }

function put(srv, path, headers = {}, body) {
  return request(srv.url, `/v1/stream/${path}`, { method: "PUT", headers: { ...JSON_TYPE, ...headers }, body })
}

/** Fork `from` at path (its tail unless headers say otherwise), holding body. */
function fork(srv, path, from, body, headers = {}) {
  return put(srv, path, { "Stream-Forked-From": `/v1/stream/${from}`, ...headers }, body)
}

async function readJson(srv, path) {
  const res = await request(srv.url, `/v1/stream/${path}?offset=-1`)
  assert.equal(res.status, 200, `GET ${path}: ${res.status} ${res.text}`)
  return JSON.parse(res.text)
}

test("forks - a chain of 64 forks reads whole; the 65th fork and beyond are 400", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  assert.equal((await put(srv, "chain/0", {}, "[0]")).status, 201)
  for (let i = 1; i <= FORK_DEPTH_MAX; i++) {
    const res = await fork(srv, `chain/${i}`, `chain/${i - 1}`, `[${i}]`)
    assert.equal(res.status, 201, `fork ${i}: ${res.status} ${res.text}`)
  }
  const want = Array.from({ length: FORK_DEPTH_MAX + 1 }, (_, i) => i)
  assert.deepEqual(await readJson(srv, `chain/${FORK_DEPTH_MAX}`), want, "the deepest fork reads the whole chain")

  // Past the limit: a clear 400 every time, nothing created, the chain
  // and the server untouched.
  for (let i = FORK_DEPTH_MAX + 1; i <= FORK_DEPTH_MAX + 5; i++) {
    const res = await fork(srv, `chain/${i}`, `chain/${FORK_DEPTH_MAX}`, `[${i}]`)
    const err = expectError(res, 400, "bad_request", `fork ${i}`)
    assert.match(err.message, /too deep/, "the 400 says the fork chain is too deep")
    assert.match(err.message, /64/, "the 400 names the limit")
    assert.equal((await request(srv.url, `/v1/stream/chain/${i}`, { method: "HEAD" })).status, 404, `fork ${i} was not made`)
  }
  const sub = await fork(srv, "chain/sub", `chain/${FORK_DEPTH_MAX}`, undefined, {
    "Stream-Fork-Offset": offsetAt(3),
    "Stream-Fork-Sub-Offset": "1",
  })
  expectError(sub, 400, "bad_request", "a sub-offset fork past the limit")

  // At the limit, with a sub-offset: a fork of the 63rd stream is the 64th.
  const atLimit = await fork(srv, "chain/sub63", `chain/${FORK_DEPTH_MAX - 1}`, undefined, {
    "Stream-Fork-Offset": offsetAt(10),
    "Stream-Fork-Sub-Offset": "1",
  })
  assert.equal(atLimit.status, 201, `sub-offset fork at the limit: ${atLimit.status} ${atLimit.text}`)
  assert.equal(positionOf(atLimit.headers["stream-next-offset"]), 11)
  assert.deepEqual(await readJson(srv, "chain/sub63"), want.slice(0, 11))

  // Paged reads across the chain, and everything again after a restart.
  const page = await request(srv.url, `/v1/stream/chain/${FORK_DEPTH_MAX}?offset=${offsetAt(30)}`)
  assert.deepEqual(JSON.parse(page.text), want.slice(30))
  await srv.restart()
  assert.deepEqual(await readJson(srv, `chain/${FORK_DEPTH_MAX}`), want, "after a restart")
  expectError(await fork(srv, "chain/again", `chain/${FORK_DEPTH_MAX}`, "[1]"), 400, "bad_request", "after a restart")
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})

test("forks - the depth counts from the chain's start, not from the nearest fork", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  // A binary stream this time: forks of forks at their tails, no own data.
  assert.equal((await put(srv, "b/0", { "Content-Type": "text/plain" }, "abc")).status, 201)
  for (let i = 1; i <= FORK_DEPTH_MAX; i++)
    assert.equal((await fork(srv, `b/${i}`, `b/${i - 1}`, undefined, { "Content-Type": "text/plain" })).status, 201, `fork ${i}`)
  const res = await fork(srv, "b/over", `b/${FORK_DEPTH_MAX}`, undefined, { "Content-Type": "text/plain" })
  expectError(res, 400, "bad_request", "one past the limit")
  // Another chain from a stream in the middle is measured from b/0 too.
  assert.equal((await fork(srv, "b/side", `b/${FORK_DEPTH_MAX - 1}`, undefined, { "Content-Type": "text/plain" })).status, 201)
  expectError(await fork(srv, "b/side2", "b/side", undefined, { "Content-Type": "text/plain" }), 400, "bad_request", "fork of b/side")
  const got = await request(srv.url, `/v1/stream/b/${FORK_DEPTH_MAX}?offset=-1`)
  assert.equal(got.text, "abc")
})

test("forks - a 4,000-fork chain an older version stored still reads, and is refused as a fork source", { timeout: 120_000, skip: TEST_PG_URL ? "builds an SQLite file: SQLite only" : false }, async (t) => {
  const srv = await startServer({ t })
  assert.equal((await put(srv, "legacy/0", {}, "[0]")).status, 201)
  assert.equal(await srv.stop(), 0)
  // What the old code let ~4,000 PUTs with Stream-Forked-From build: each
  // legacy/i forks legacy/(i-1) at its tail and holds one message, i.
  const DEPTH = 4000
  const sql = `
    BEGIN;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${DEPTH})
    INSERT INTO streams (path, owner, content_type, created_ms, touched_ms, ttl_s, expires_ms, tail, closed, fork_pos, refs, deleted)
      SELECT 'legacy/' || i, s.owner, s.content_type, s.created_ms, s.touched_ms, s.ttl_s, s.expires_ms, i + 1, 0, i, 1, 0
      FROM n, streams s WHERE s.path = 'legacy/0';
    UPDATE streams SET fork_src = (SELECT p.id FROM streams p WHERE p.path = 'legacy/' || (CAST(substr(streams.path, 8) AS INTEGER) - 1))
      WHERE path GLOB 'legacy/*' AND path != 'legacy/0';
    UPDATE streams SET refs = 1 WHERE path = 'legacy/0';
    UPDATE streams SET refs = 0 WHERE path = 'legacy/${DEPTH}';
    INSERT INTO chunks (stream_id, end_pos, start_pos, unit_end, data)
      SELECT id, fork_pos + 1, fork_pos, fork_pos + 1, CAST(CAST(fork_pos AS TEXT) AS BLOB) FROM streams
      WHERE path GLOB 'legacy/*' AND path != 'legacy/0';
    COMMIT;`
  execFileSync("sqlite3", [path.join(srv.dataDir, "parley.db")], { input: sql })
  await srv.start()

  const want = Array.from({ length: DEPTH + 1 }, (_, i) => i)
  assert.deepEqual(await readJson(srv, `legacy/${DEPTH}`), want, "the deepest stream reads the whole chain")
  const tail = await request(srv.url, `/v1/stream/legacy/${DEPTH}?offset=${offsetAt(DEPTH - 2)}`)
  assert.deepEqual(JSON.parse(tail.text), want.slice(DEPTH - 2))
  const sub = await fork(srv, "legacy/fork", `legacy/${DEPTH}`, undefined, {
    "Stream-Fork-Offset": offsetAt(5),
    "Stream-Fork-Sub-Offset": "1",
  })
  expectError(sub, 400, "bad_request", "a sub-offset fork of the deep chain")
  // Within the limit, a sub-offset fork finds its append down the old chain.
  const near = await fork(srv, "legacy/near", "legacy/40", undefined, {
    "Stream-Fork-Offset": offsetAt(5),
    "Stream-Fork-Sub-Offset": "1",
  })
  assert.equal(near.status, 201, `${near.status} ${near.text}`)
  assert.deepEqual(await readJson(srv, "legacy/near"), want.slice(0, 6))
  assert.equal((await request(srv.url, "/healthz")).status, 200, "the server is still up")
})
