// Live subscriptions: resume by offset across a server killed with -9 and
// restarted (nothing missed, nothing twice), over SSE and long-poll, and a
// new subscription started from a stored offset continues exactly.
import assert from "node:assert/strict"
import { test } from "node:test"

import { type FeedEvent, type Message } from "../src/index.js"
import { createClient, sleep, startServer, until } from "./lib/server.js"

for (const live of ["sse", "long-poll"] as const) {
  test(`live - ${live}: the feed and a conversation log resume after kill -9 and restart, missing nothing, repeating nothing`, { timeout: 60_000 }, async (t) => {
    const srv = await startServer(t, ["--long-poll-timeout", "2000"])
    const c = createClient({ baseUrl: srv.url, outbox: "memory", retry: { baseDelayMs: 50, maxDelayMs: 500 } })
    const conv = await c.conversations.create({ title: "live" })
    const events: FeedEvent[] = []
    const messages: Message[] = []
    const feed = c.feed.subscribe({ offset: "-1", live }, (ev) => events.push(ev))
    const log = c.messages.subscribe(conv.id, { live })
    const reading = (async () => {
      for await (const m of log) messages.push(m)
    })()
    const send = async (from: number, to: number) => {
      for (let i = from; i <= to; i++) await c.messages.send(conv.id, { role: "user", content: `m${i}` })
    }
    await send(1, 5)
    await until(() => messages.length === 5, 10_000, "the first five")

    await srv.kill9()
    await sleep(300)
    await srv.start() // same port, same data
    await send(6, 10) // written while the subscribers may still be reconnecting
    await until(() => messages.length >= 10, 15_000, "all ten after the restart")
    await srv.kill9()
    await srv.start()
    await send(11, 12)
    await until(() => messages.length >= 12 && events.filter((e) => e.type === "message.created").length >= 12, 15_000, "all twelve")
    await sleep(200) // a duplicate would show up here

    assert.deepEqual(messages.map((m) => m.seq), Array.from({ length: 12 }, (_, i) => i + 1))
    const created = events.filter((e) => e.type === "message.created").map((e) => e.message_id)
    assert.equal(created.length, 12)
    assert.equal(new Set(created).size, 12)
    assert.equal(events.filter((e) => e.type === "conversation.created").length, 1)
    assert.match(feed.offset, /^\d{16}_\d{16}$/)
    feed.close()
    log.close()
    await reading
    c.close()
  })
}

test("live - a subscription started from a stored offset continues exactly where the last one stopped", { timeout: 30_000 }, async (t) => {
  const srv = await startServer(t)
  const c = createClient({ baseUrl: srv.url, outbox: "memory" })
  const conv = await c.conversations.create({ title: "resume" })
  for (let i = 1; i <= 4; i++) await c.messages.send(conv.id, { role: "user", content: i })
  const first: number[] = []
  let stored = ""
  for await (const m of c.messages.subscribe(conv.id, {})) {
    first.push(m.seq)
    if (m.seq === 4) break
  }
  // What an app persists: the offset of the batch that ended with seq 4.
  const sub1 = c.messages.subscribe(conv.id, {})
  for await (const b of sub1.batches()) {
    stored = b.offset
    if (b.upToDate) break
  }
  for (let i = 5; i <= 7; i++) await c.messages.send(conv.id, { role: "user", content: i })
  const second: number[] = []
  const sub2 = c.messages.subscribe(conv.id, { offset: stored })
  for await (const m of sub2) {
    second.push(m.seq)
    if (m.seq === 7) break
  }
  assert.deepEqual(first, [1, 2, 3, 4])
  assert.deepEqual(second, [5, 6, 7])
  assert.ok(sub2.offset > stored)
  c.close()
})
