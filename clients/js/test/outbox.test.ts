// The outbox against the real server: a write whose answer was lost is
// retried with its key and stored once; writes enqueued offline are kept
// in a file, survive a "reload" (a new client on the same file) and are
// applied exactly once, in order.
import assert from "node:assert/strict"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"

import { type Settled } from "../src/index.js"
import { FileOutboxStore } from "../src/node.js"
import { createClient, startServer, until } from "./lib/server.js"

test("outbox - a write whose answer is lost after the server applied it is retried and stored once", async (t) => {
  const srv = await startServer(t)
  const setup = createClient({ baseUrl: srv.url, outbox: "memory" })
  const conv = await setup.conversations.create({ title: "lost answers" })
  let dropped = 0
  const seen: string[] = []
  // The request reaches the server and is committed; the answer never arrives.
  const lossy = async (url: string, init: RequestInit) => {
    const res = await fetch(url, init)
    if (init.method === "POST") seen.push((init.headers as Record<string, string>)["Idempotency-Key"])
    if (init.method === "POST" && dropped < 2) {
      dropped++
      await res.arrayBuffer()
      throw new TypeError("fetch failed: connection reset")
    }
    return res
  }
  const c = createClient({ baseUrl: srv.url, outbox: "memory", fetch: lossy, random: () => 0 })
  const msg = await c.messages.send(conv.id, { role: "user", content: "hello once" })
  assert.equal(msg.seq, 1)
  assert.equal(dropped, 2)
  assert.equal(seen.length, 3)
  assert.equal(new Set(seen).size, 1, "every attempt carried the same Idempotency-Key")
  const page = await setup.messages.list(conv.id)
  assert.deepEqual(page.items.map((m) => m.content), ["hello once"], "stored exactly once")
  assert.equal(page.items[0].id, msg.id)
  c.close()
  setup.close()
})

test("outbox - writes enqueued offline are kept in a file, survive a reload and drain exactly once, in order", async (t) => {
  const srv = await startServer(t)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-outbox-"))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, "outbox.jsonl")
  const admin = createClient({ baseUrl: srv.url, outbox: "memory" })
  const conv = await admin.conversations.create({ title: "offline" })

  // First "page load": the first write reaches the server but its answer is
  // lost; then the network is gone.
  let reached = 0
  const flaky = async (url: string, init: RequestInit) => {
    if (reached === 0 && init.method === "POST") {
      reached = -1 // taken: only this one write goes through
      const res = await fetch(url, init)
      await res.arrayBuffer()
      reached = 1 // counted once the server has answered (applied), not when sent
    }
    throw new TypeError("fetch failed: offline")
  }
  const a = createClient({ baseUrl: srv.url, outbox: new FileOutboxStore(file), fetch: flaky, random: () => 0, retry: { retries: 0 } })
  const first = ["one", "two", "three"].map((text) => a.messages.send(conv.id, { role: "user", content: text }))
  for (const p of first) p.catch(() => {}) // this page goes away before they settle
  await until(() => fs.existsSync(file) && fs.readFileSync(file, "utf8").trim().split("\n").length === 3, 5000, "three entries on disk")
  await until(() => reached === 1, 5000, "the first write reached the server")
  a.close()
  const lines = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l))
  assert.deepEqual(lines.map((e) => JSON.parse(e.body).content), ["one", "two", "three"])
  assert.equal((await admin.messages.list(conv.id)).items.length, 1, "only the first was applied so far")
  // No temporary file is left beside it.
  assert.deepEqual(fs.readdirSync(dir), ["outbox.jsonl"])

  // The "reload": a new client on the same file, online.
  const settled: Settled[] = []
  const b = createClient({ baseUrl: srv.url, outbox: new FileOutboxStore(file) })
  b.outbox.onSettled((s) => settled.push(s))
  await until(() => settled.length === 3, 10_000, "the reloaded outbox drains")
  assert.ok(settled.every((s) => s.answer && !s.error), JSON.stringify(settled.map((s) => s.error?.message)))
  assert.equal(settled[0].answer!.headers.get("idempotent-replayed"), "true", "the first was answered from the stored response")
  const items = (await admin.messages.list(conv.id)).items
  assert.deepEqual(items.map((m) => [m.seq, m.content]), [[1, "one"], [2, "two"], [3, "three"]])
  assert.equal(fs.readFileSync(file, "utf8"), "", "the file is empty once drained")

  // A third instance finds nothing to send.
  const c = createClient({ baseUrl: srv.url, outbox: new FileOutboxStore(file) })
  assert.deepEqual(await c.outbox.pending(), [])
  assert.equal((await admin.messages.list(conv.id)).items.length, 3)
  for (const x of [b, c, admin]) x.close()
})

test("outbox - a write made offline resolves with the server's answer once the network is back", async (t) => {
  const srv = await startServer(t)
  let online = false
  const gated = async (url: string, init: RequestInit) => {
    if (!online) throw new TypeError("fetch failed: offline")
    return fetch(url, init)
  }
  const c = createClient({ baseUrl: srv.url, outbox: "memory", fetch: gated, random: () => 0, retry: { retries: 0 } })
  let settled = false
  const p = c.conversations.create({ title: "made offline" }).finally(() => (settled = true))
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(settled, false, "still waiting while offline")
  online = true
  c.outbox.drain() // what the browser's `online` event does
  const conv = await p
  assert.equal(conv.title, "made offline")
  const all = []
  for await (const x of c.conversations.all()) all.push(x)
  assert.deepEqual(all.map((x) => x.id), [conv.id], "created once")
  c.close()
})
