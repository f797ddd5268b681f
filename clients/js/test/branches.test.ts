// Branches, blobs and search through the typed client against the real
// server: edit and regenerate (each applied once when its answer is lost),
// the siblings a messages page carries, activating a branch; blob upload
// from every body kind with one Idempotency-Key, download, ranges, signed
// and public snapshot URLs; search pages.
import assert from "node:assert/strict"
import { test } from "node:test"

import { ParleyError } from "../src/index.js"
import { createClient, startServer } from "./lib/server.js"

/** A fetch that drops the answer of the first `n` requests of `method` whose path ends with `suffix` (the server applied them). */
function lossy(method: string, suffix: string, n: number) {
  const keys: string[] = []
  let dropped = 0
  const f = async (url: string, init: RequestInit) => {
    const res = await fetch(url, init)
    if (init.method === method && new URL(url).pathname.endsWith(suffix)) {
      keys.push((init.headers as Record<string, string>)["Idempotency-Key"])
      if (dropped < n) {
        dropped++
        await res.arrayBuffer()
        throw new TypeError("fetch failed: connection reset")
      }
    }
    return res
  }
  return { fetch: f, keys, dropped: () => dropped }
}

async function answer(c: ReturnType<typeof createClient>, conversationId: string, text: string) {
  const s = await c.sessions.claim({ conversation_id: conversationId })
  assert.ok(s, "a pending session")
  return c.sessions.complete(s!.id, { content: text, attempt: s!.attempt })
}

test("branches - edit and regenerate make sibling branches, once each under lost answers; activate switches", { timeout: 60_000 }, async (t) => {
  const srv = await startServer(t)
  const c = createClient({ baseUrl: srv.url, outbox: "memory" })
  const conv = await c.conversations.create({ title: "trip" })
  const u1 = await c.messages.send(conv.id, { role: "user", content: "Plan a trip to Lisbon", process: true })
  await answer(c, conv.id, "Lisbon plan")
  const before = await c.messages.list(conv.id)
  assert.deepEqual(before.items.map((m) => m.content), ["Plan a trip to Lisbon", "Lisbon plan"])
  assert.equal(before.items[0].siblings, undefined, "no siblings before any branch")
  const a1 = before.items[1]

  // The edit's answer is lost twice: the retries carry one key and one branch is made.
  const net = lossy("POST", "/edit", 2)
  const e = createClient({ baseUrl: srv.url, outbox: "memory", fetch: net.fetch, random: () => 0 })
  const edited = await e.branches.edit(conv.id, u1.id, { content: "Plan a trip to Porto instead", process: true })
  assert.equal(net.dropped(), 2)
  assert.equal(net.keys.length, 3)
  assert.ok(net.keys[0])
  assert.equal(new Set(net.keys).size, 1, "every attempt carried the same Idempotency-Key")
  assert.ok(edited.branch && edited.branch !== "main")
  assert.equal(edited.session?.status, "pending")
  let branches = await c.branches.list(conv.id)
  assert.deepEqual(branches.items.map((b) => b.id), ["main", edited.branch])
  assert.equal(branches.active, edited.branch)
  await answer(c, conv.id, "Porto plan")

  // One request draws the thread with its switcher.
  let page = await c.branches.messages(conv.id)
  assert.deepEqual(page.items.map((m) => m.content), ["Plan a trip to Porto instead", "Porto plan"])
  assert.deepEqual(page.items[0].siblings, { index: 2, count: 2, ids: [u1.id, edited.id], branches: ["main", edited.branch] })

  // Back to main, and forth again.
  const main = await c.branches.activate(conv.id, "main")
  assert.equal(main.active, true)
  page = await c.messages.list(conv.id)
  assert.deepEqual(page.items.map((m) => m.content), ["Plan a trip to Lisbon", "Lisbon plan"])
  assert.equal(page.items[0].siblings?.index, 1)
  const other = await c.messages.list(conv.id, { branch: edited.branch })
  assert.equal(other.items[1].content, "Porto plan", "?branch= reads a branch that is not active")

  // Regenerate main's answer (its answer lost once): one new branch, one session.
  const rnet = lossy("POST", "/regenerate", 1)
  const r = createClient({ baseUrl: srv.url, outbox: "memory", fetch: rnet.fetch, random: () => 0 })
  const regen = await r.branches.regenerate(conv.id, a1.id, { branch: "main" })
  assert.ok(rnet.keys[0])
  assert.equal(new Set(rnet.keys).size, 1)
  assert.equal(regen.branch.active, true)
  assert.equal(regen.branch.parent, "main")
  assert.equal(regen.session.message_id, u1.id)
  await answer(c, conv.id, "Lisbon plan, take two")
  page = await c.messages.list(conv.id)
  assert.deepEqual(page.items.map((m) => m.content), ["Plan a trip to Lisbon", "Lisbon plan, take two"])
  assert.equal(page.items[1].siblings?.count, 2)
  assert.deepEqual(page.items[1].siblings?.branches, ["main", regen.branch.id])
  branches = await c.branches.list(conv.id, { limit: 10 })
  assert.equal(branches.items.length, 3)
  assert.equal(branches.active, regen.branch.id)
  const got = await c.branches.get(conv.id, regen.branch.id)
  assert.equal(got.session_id, regen.session.id)

  // Errors are ParleyErrors with the server's codes.
  await assert.rejects(c.branches.edit(conv.id, a1.id, { content: "x", branch: "main" }), (x: unknown) => x instanceof ParleyError && x.status === 400 && x.code === "invalid_message")
  await assert.rejects(c.branches.get(conv.id, "nope"), (x: unknown) => x instanceof ParleyError && x.status === 404)
  for (const x of [c, e, r]) x.close()
})

test("blobs - upload (Uint8Array, ArrayBuffer, Blob) once under a lost answer; download, range, signed and snapshot URLs", { timeout: 60_000 }, async (t) => {
  const srv = await startServer(t)
  const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) % 251)
  const net = lossy("POST", "/v1/blobs", 1)
  const c = createClient({ baseUrl: srv.url, outbox: "memory", fetch: net.fetch, random: () => 0 })
  const b = await c.blobs.upload(bytes, { contentType: "image/png" })
  assert.equal(net.dropped(), 1)
  assert.equal(net.keys.length, 2)
  assert.ok(net.keys[0])
  assert.equal(new Set(net.keys).size, 1, "the retried upload carried the same Idempotency-Key")
  assert.equal(b.size, bytes.length)
  assert.equal(b.content_type, "image/png")
  assert.match(b.id, /^[0-9a-f]{64}$/)
  const again = await c.blobs.upload(new Blob([bytes], { type: "image/png" }))
  assert.equal(again.id, b.id, "the same bytes, as a Blob: the same blob")
  const small = await c.blobs.upload(new TextEncoder().encode("hello").buffer)
  assert.equal(small.content_type, "application/octet-stream")
  assert.equal(small.size, 5)

  const down = await c.blobs.download(b.id)
  assert.equal(down.type, "image/png")
  assert.deepEqual(new Uint8Array(await down.arrayBuffer()), bytes)
  const part = await c.blobs.range(b.id, 10, 19)
  assert.equal(part.status, 206)
  assert.equal(part.total, bytes.length)
  assert.deepEqual(new Uint8Array(await part.data.arrayBuffer()), bytes.slice(10, 20))
  await assert.rejects(c.blobs.download("0".repeat(64)), (x: unknown) => x instanceof ParleyError && x.status === 404)

  // A signed URL reads without any header.
  const signed = await c.blobs.signedUrl(small.id, 60)
  assert.ok(signed.url.startsWith(srv.url + "/v1/blobs/"))
  const res = await fetch(signed.url)
  assert.equal(res.status, 200)
  assert.equal(await res.text(), "hello")

  // A message with a blob part; its public snapshot serves the blob.
  const conv = await c.conversations.create({ title: "photos" })
  await c.messages.send(conv.id, { role: "user", content: [{ type: "text", text: "look" }, { type: "blob", id: b.id }] })
  await assert.rejects(c.messages.send(conv.id, { role: "user", content: [{ type: "blob", id: "1".repeat(64) }] }), (x: unknown) => x instanceof ParleyError && x.code === "blob_not_found")
  const snap = await c.snapshots.create({ source: `/v1/conversations/${conv.id}`, public: true })
  const url = c.blobs.snapshotUrl(snap.id, b.id)
  assert.equal(url, `${srv.url}/v1/snapshots/${snap.id}/blobs/${b.id}`)
  const pub = await fetch(url)
  assert.equal(pub.status, 200)
  assert.equal((await pub.arrayBuffer()).byteLength, bytes.length)
  c.close()
})

test("search - hits with snippets, paged by next_cursor, and all()", { timeout: 30_000 }, async (t) => {
  const srv = await startServer(t)
  const c = createClient({ baseUrl: srv.url, outbox: "memory" })
  const conv = await c.conversations.create({ title: "hotel by the river" })
  for (let i = 0; i < 3; i++) await c.messages.send(conv.id, { role: "user", content: `Book the hotel near the river, night ${i}` })
  await c.messages.send(conv.id, { role: "user", content: "something else" })
  const first = await c.search.query("hotel river", { limit: 2 })
  assert.equal(first.items.length, 2)
  assert.ok(first.next_cursor)
  assert.ok(first.items.every((h) => h.conversation_id === conv.id && /\[hotel\]/i.test(h.snippet)))
  const second = await c.search.query("hotel river", { limit: 2, cursor: first.next_cursor })
  assert.equal(second.items.length, 2)
  assert.equal(second.next_cursor, null)
  const all = []
  for await (const h of c.search.all("hotel", 1)) all.push(h)
  assert.equal(all.length, 4, "three messages and the title")
  assert.equal(all.filter((h) => h.kind === "title").length, 1)
  await assert.rejects(c.search.query('"open'), (x: unknown) => x instanceof ParleyError && x.code === "invalid_query")
  c.close()
})
