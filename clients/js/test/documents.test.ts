// Documents: If-Match helpers, and update(fn) — merge-and-retry on 412 —
// applying each change exactly once under concurrency and lost answers.
import assert from "node:assert/strict"
import { test } from "node:test"

import { mergeDiff, ParleyError } from "../src/index.js"
import { createClient, startServer } from "./lib/server.js"

test("documents - update(fn) re-reads and re-applies on 412: twenty concurrent increments give twenty", { timeout: 60_000 }, async (t) => {
  const srv = await startServer(t)
  const a = createClient({ baseUrl: srv.url, outbox: "memory" })
  const b = createClient({ baseUrl: srv.url, outbox: "memory" })
  let calls = 0
  const inc = (d: { n?: number; by?: string[] } | undefined, who: string) => {
    calls++
    return { ...d, n: (d?.n ?? 0) + 1, by: [...(d?.by ?? []), who] }
  }
  // Two clients (two tabs, two devices) race on the same document.
  await Promise.all(
    Array.from({ length: 10 }, (_, i) => [
      a.documents.update("counters", "c1", (d) => inc(d, `a${i}`), { retries: 40 }),
      b.documents.update("counters", "c1", (d) => inc(d, `b${i}`), { retries: 40 }),
    ]).flat(),
  )
  const doc = await a.documents.get("counters", "c1")
  assert.equal(doc.data.n, 20)
  assert.equal(doc.data.by.length, 20)
  assert.equal(new Set(doc.data.by).size, 20)
  assert.equal(doc.version, 20)
  assert.ok(calls > 20, `conflicts happened and were merged (${calls} applications)`)
  a.close()
  b.close()
})

test("documents - a write by someone else between read and write is merged, not overwritten", async (t) => {
  const srv = await startServer(t)
  const me = createClient({ baseUrl: srv.url, outbox: "memory" })
  const other = createClient({ baseUrl: srv.url, outbox: "memory" })
  await me.documents.put("settings", "u1", { theme: "light", font: 12 })
  let runs = 0
  const doc = await me.documents.update("settings", "u1", async (d) => {
    runs++
    if (runs === 1) await other.documents.patch("settings", "u1", { font: 16 })
    return { ...d!, theme: "dark" }
  })
  assert.equal(runs, 2)
  assert.deepEqual(doc!.data, { theme: "dark", font: 16 })
  assert.equal(doc!.version, 3)

  // The If-Match helpers: a stale version is a 412 carrying the current document.
  await assert.rejects(me.documents.put("settings", "u1", { theme: "x" }, { ifMatch: 1 }), (e: unknown) => {
    assert.ok(e instanceof ParleyError)
    assert.equal(e.status, 412)
    assert.equal(e.details.current.version, 3)
    return true
  })
  await assert.rejects(me.documents.put("settings", "u1", {}, { ifNoneMatch: "*" }), (e: unknown) => e instanceof ParleyError && e.status === 412)
  const ok = await me.documents.patch("settings", "u1", { font: null }, { ifMatch: 3 })
  assert.deepEqual(ok.data, { theme: "dark" })
  me.close()
  other.close()
})

test("documents - update(fn) whose answer is lost is retried with its key and applied once", async (t) => {
  const srv = await startServer(t)
  let dropped = false
  const lossy = async (url: string, init: RequestInit) => {
    const res = await fetch(url, init)
    if (init.method === "PATCH" && !dropped) {
      dropped = true
      await res.arrayBuffer()
      throw new TypeError("fetch failed")
    }
    return res
  }
  const c = createClient({ baseUrl: srv.url, outbox: "memory", fetch: lossy, random: () => 0 })
  await c.documents.put("counters", "c2", { n: 0 })
  let runs = 0
  const doc = await c.documents.update<{ n: number }>("counters", "c2", (d) => (runs++, { n: d!.n + 1 }))
  assert.ok(dropped)
  assert.equal(runs, 1)
  assert.equal(doc!.data.n, 1)
  assert.equal((await c.documents.get("counters", "c2")).data.n, 1)
  c.close()
})

test("documents - mergeDiff makes RFC 7386 patches, and declines what a merge patch cannot say", () => {
  assert.deepEqual(mergeDiff({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { a: 1, b: { c: 4 }, e: [1, 2], f: "x" }), { b: { c: 4, d: null }, e: [1, 2], f: "x" })
  assert.deepEqual(mergeDiff({ a: 1 }, { a: 1 }), {})
  assert.equal(mergeDiff({ a: 1 }, { a: null }), undefined)
  assert.equal(mergeDiff({}, { a: { b: null } }), undefined)
  assert.deepEqual(mergeDiff({}, { a: [null] }), { a: [null] })
})
