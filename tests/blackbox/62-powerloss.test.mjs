// Simulated power loss (RELIABILITY.md item 2). kill -9 keeps the page
// cache, so it cannot show a missing fsync; here the server runs with
// tests/fault/powerloss.c preloaded, which journals every write not yet
// synced, and after each kill -9 the unsynced writes are undone or torn
// (lib/powerloss.mjs) as a power cut could leave them. Then:
//   - `PRAGMA integrity_check` (the sqlite3 command-line shell) says ok;
//   - the server starts, and every acknowledged write is present exactly
//     once, before any retry;
//   - the unacknowledged writes are retried with their Idempotency-Keys and
//     each lands once; seq stays gap-free.
// A second test makes fsync a no-op (a disk that lies) and checks that the
// same check then finds lost acknowledged writes: this test can fail.
//
// PARLEY_POWERLOSS_ROUNDS sets the number of power cuts (default 12).
import { test } from "node:test"
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"
import { request } from "./lib/http.mjs"
import { powerCut } from "./lib/powerloss.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
// The shim journals the server's own file writes; on PostgreSQL the
// database's writes are the PostgreSQL server's, out of its reach.
const skip = TEST_PG_URL ? "SQLite only: the shim cuts power under the server's own files" : false
// Built next to the release binary (build/), whichever binary runs.
const SHIM = path.resolve(here, "..", "..", "build", "libparley_powerloss.so")
const ROUNDS = Number(process.env.PARLEY_POWERLOSS_ROUNDS ?? 12)
const json = { "Content-Type": "application/json" }

/** A server with the shim on a data directory of our own; the journal lives outside it. */
async function startWithShim(t, extraEnv = {}) {
  assert.ok(fs.existsSync(SHIM), `power-loss shim not built: ${SHIM}`)
  const side = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "parley-powerloss-")))
  t.after(() => fs.rmSync(side, { recursive: true, force: true }))
  const dataDir = path.join(side, "data")
  const journal = path.join(side, "journal")
  const srv = await startServer({
    t,
    dataDir,
    env: {
      LD_PRELOAD: SHIM,
      PARLEY_POWERLOSS_DIR: dataDir,
      PARLEY_POWERLOSS_JOURNAL: journal,
      ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? ""}:verify_asan_link_order=0`,
      ...extraEnv,
    },
  })
  return { srv, side, dataDir, journal }
}

function integrityCheck(dataDir) {
  return execFileSync("sqlite3", [path.join(dataDir, "parley.db"), "PRAGMA integrity_check"], {
    encoding: "utf8",
  }).trim()
}

/** Every message of a conversation: Map content -> count; asserts seq is gap-free. */
async function readBack(srv, id) {
  const seen = new Map()
  let after = 0
  for (;;) {
    const res = await request(srv.url, `/v1/conversations/${id}/messages?after=${after}&limit=100`)
    assert.equal(res.status, 200, `read back: ${res.status} ${res.text}`)
    const page = JSON.parse(res.body)
    for (const m of page.items) {
      assert.equal(m.seq, after + 1, "seq has a gap")
      after = m.seq
      seen.set(m.content, (seen.get(m.content) ?? 0) + 1)
    }
    if (!page.next_cursor && page.items.length < 100) break
  }
  return seen
}

/** The acknowledged values not present exactly once. */
function missing(acked, seen) {
  return [...acked].filter((v) => seen.get(v) !== 1)
}

/** Writers: clients post unique values with keys until stop(); 201s go to acked. */
function writers(srv, id, acked, pending, clients, prefix) {
  let stop = false
  let counter = 0
  const done = Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (!stop) {
        const value = `${prefix}c${c}-${counter++}`
        pending.add(value)
        try {
          const res = await send(srv, id, value)
          if (res.status === 201) {
            acked.add(value)
            pending.delete(value)
          }
        } catch {
          return // the server is gone: this write's fate is unknown
        }
      }
    }),
  )
  return {
    stop: async () => {
      stop = true
      await done
    },
  }
}

function send(srv, id, value) {
  return request(srv.url, `/v1/conversations/${id}/messages`, {
    method: "POST",
    headers: { ...json, "Idempotency-Key": `k-${value}` },
    body: JSON.stringify({ role: "user", content: value }),
    timeoutMs: 5000,
  })
}

test("powerloss - unsynced writes lost at a random point: the store is intact and every acknowledged write is there once", { timeout: 300_000, skip }, async (t) => {
  assert.ok(ROUNDS >= 1, "PARLEY_POWERLOSS_ROUNDS must be at least 1")
  const { srv, dataDir, journal } = await startWithShim(t)
  const conv = await request(srv.url, "/v1/conversations", { method: "POST", headers: json, body: '{"title":"power"}' })
  assert.equal(conv.status, 201)
  const id = JSON.parse(conv.body).id
  const acked = new Set()
  const pending = new Set()
  const totals = { cutRounds: 0, files: 0, writes: 0, bytes: 0, sectorsOld: 0, sectorsNew: 0, sectorsGarbage: 0, retried: 0 }

  // A kill lands between a write and its fsync only by chance (on a fast
  // disk the window is short): until one round has cut an unsynced write,
  // keep going, up to four times the rounds asked for.
  let round = 0
  for (; round < ROUNDS || (totals.writes === 0 && round < ROUNDS * 4); round++) {
    const w = writers(srv, id, acked, pending, 6, `r${round}-`)
    await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 600)))
    await srv.kill9()
    await w.stop()
    const mode = round % 2 === 0 ? "revert" : "tear"
    const cut = powerCut(journal, mode)
    for (const k of Object.keys(cut)) totals[k] += cut[k]
    if (cut.writes > 0) totals.cutRounds++
    assert.equal(integrityCheck(dataDir), "ok", `round ${round} (${mode}): integrity_check`)

    await srv.start()
    // Before any retry: every acknowledged write survived the power cut.
    let seen = await readBack(srv, id)
    const lost = missing(acked, seen)
    assert.deepEqual(lost.slice(0, 10), [], `round ${round} (${mode}): ${lost.length} acknowledged writes lost or duplicated`)
    // Retry the unacknowledged ones with their keys: each lands once.
    for (const value of [...pending]) {
      const res = await send(srv, id, value)
      assert.equal(res.status, 201, `retry of ${value}: ${res.status} ${res.text}`)
      acked.add(value)
      pending.delete(value)
      totals.retried++
    }
    seen = await readBack(srv, id)
    assert.deepEqual(missing(acked, seen).slice(0, 10), [], `round ${round}: after the retries`)
    for (const [value, n] of seen) assert.equal(n, 1, `${value} stored ${n} times`)
    assert.equal(seen.size, acked.size, "a value nobody sent is stored")
  }
  assert.ok(acked.size > ROUNDS * 10, `only ${acked.size} writes acknowledged`)
  assert.ok(totals.writes > 0, `no unsynced write was cut in ${round} power cuts: the shim saw nothing`)
  t.diagnostic(
    `${round} power cuts (${totals.cutRounds} with unsynced writes to cut): ${acked.size} acknowledged writes, all found once; ` +
      `${totals.writes} unsynced writes (${totals.bytes} bytes) cut across ${totals.files} files; ` +
      `torn sectors: ${totals.sectorsOld} old, ${totals.sectorsNew} new, ${totals.sectorsGarbage} garbage; ` +
      `${totals.retried} unacknowledged writes retried`,
  )
})

test("powerloss - the check catches a disk that acknowledges fsync without syncing", { timeout: 60_000, skip }, async (t) => {
  const trigger = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "parley-nosync-")), "lie")
  t.after(() => fs.rmSync(path.dirname(trigger), { recursive: true, force: true }))
  const { srv, dataDir, journal } = await startWithShim(t, { PARLEY_POWERLOSS_NOSYNC_TRIGGER: trigger })
  const conv = await request(srv.url, "/v1/conversations", { method: "POST", headers: json, body: '{"title":"lies"}' })
  assert.equal(conv.status, 201)
  const id = JSON.parse(conv.body).id
  const acked = new Set()
  for (let i = 0; i < 10; i++) {
    assert.equal((await send(srv, id, `honest-${i}`)).status, 201)
    acked.add(`honest-${i}`)
  }
  fs.writeFileSync(trigger, "") // from now on fsync and fdatasync are no-ops
  for (let i = 0; i < 30; i++) {
    assert.equal((await send(srv, id, `lied-${i}`)).status, 201)
    acked.add(`lied-${i}`)
  }
  await srv.kill9()
  fs.rmSync(trigger)
  const cut = powerCut(journal, "revert")
  assert.equal(integrityCheck(dataDir), "ok")
  await srv.start()
  const lost = missing(acked, await readBack(srv, id))
  assert.ok(lost.length > 0, "with fsync a no-op, a power cut lost nothing: the power-loss check is blind")
  assert.ok(lost.every((v) => v.startsWith("lied-")), `writes synced before the lie were lost: ${lost}`)
  t.diagnostic(`fsync made a no-op: ${lost.length} of ${acked.size} acknowledged writes lost (${cut.writes} unsynced writes undone), and the check reports them`)
})
