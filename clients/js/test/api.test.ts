// The typed routes against the real server: conversations (pages, If-Match),
// messages, sessions lists, snapshots (public read, revoke), raw streams.
import assert from "node:assert/strict"
import { test } from "node:test"

import { ParleyError } from "../src/index.js"
import { createClient, startServer } from "./lib/server.js"

test("api - conversations, messages, sessions, snapshots and streams answer through the typed client", { timeout: 30_000 }, async (t) => {
  const srv = await startServer(t)
  const c = createClient({ baseUrl: srv.url, outbox: "memory" })
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await c.conversations.create({ title: `c${i}`, metadata: { i } })).id)
  const page = await c.conversations.list({ limit: 2 })
  assert.equal(page.items.length, 2)
  assert.ok(page.next_cursor)
  const all = []
  for await (const x of c.conversations.all(1)) all.push(x.id)
  assert.deepEqual(all.sort(), [...ids].sort())

  const conv = await c.conversations.get(ids[0])
  const renamed = await c.conversations.update(conv.id, { title: "renamed" }, { ifMatch: conv.version })
  assert.equal(renamed.title, "renamed")
  await assert.rejects(c.conversations.update(conv.id, { title: "stale" }, { ifMatch: conv.version }), (e: unknown) => e instanceof ParleyError && e.status === 412)

  const m = await c.messages.send(conv.id, { role: "user", content: [{ type: "text", text: "hi" }], process: true })
  assert.equal(m.session?.status, "pending")
  assert.equal((await c.sessions.list(conv.id, { status: "pending" })).items.length, 1)
  assert.equal((await c.sessions.latest(conv.id)).id, m.session_id)
  const cancelled = await c.sessions.cancel(m.session_id!)
  assert.equal(cancelled.status, "cancelled")
  await assert.rejects(c.sessions.cancel(m.session_id!), (e: unknown) => e instanceof ParleyError && e.status === 409 && e.code === "invalid_transition")

  const snap = await c.snapshots.create({ source: `/v1/conversations/${conv.id}`, public: true })
  assert.equal(snap.url, `/v1/snapshots/${snap.id}`)
  const anon = createClient({ baseUrl: srv.url, outbox: "memory" })
  const frozen = await anon.snapshots.get(snap.id)
  assert.deepEqual(frozen.content?.messages?.map((x) => x.seq), [1])
  assert.equal((await c.snapshots.list()).items.length, 1)
  await c.snapshots.delete(snap.id)
  await assert.rejects(c.snapshots.get(snap.id), (e: unknown) => e instanceof ParleyError && e.status === 404)

  await c.streams.create("notes/a b")
  await c.streams.append("notes/a b", { n: 1 })
  await c.streams.append("notes/a b", [{ n: 2 }, { n: 3 }])
  const read = await c.streams.read("notes/a b")
  assert.deepEqual(read.items, [{ n: 1 }, { n: 2 }, { n: 3 }])
  assert.equal(read.upToDate, true)

  await c.conversations.delete(ids[2])
  await assert.rejects(c.conversations.get(ids[2]), (e: unknown) => e instanceof ParleyError && e.status === 404)
  const kinds = (await c.feed.read()).items.map((e) => e.type)
  assert.ok(kinds.includes("conversation.deleted") && kinds.includes("snapshot.created") && kinds.includes("stream.created"), kinds.join(","))
  c.close()
  anon.close()
})
