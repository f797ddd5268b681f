// Durable Streams - the official TypeScript client (@durable-streams/client,
// pinned in package.json) used unchanged against Parley: every client of
// the protocol must work without knowing it talks to Parley.
import assert from "node:assert/strict"
import test from "node:test"
import { DurableStream, IdempotentProducer, stream } from "@durable-streams/client"
import { startServer } from "./lib/server.mjs"
import { append, createStream } from "./lib/http.mjs"

const MiB = 1024 * 1024

test("ds-client - body() of a 3 MiB byte stream returns all of it, not the first response", async (t) => {
  // The client's body() stops after the first response whatever
  // Stream-Up-To-Date says, so a paged answer would truncate silently.
  const srv = await startServer({ t })
  const ct = "application/octet-stream"
  assert.equal((await createStream(srv.url, "dsc/bytes", ct)).status, 201)
  const all = Buffer.alloc(3 * MiB)
  for (let i = 0; i < all.length; i++) all[i] = (i * 31 + (i >> 12)) & 0xff
  for (let off = 0; off < all.length; off += MiB)
    assert.equal((await append(srv.url, "dsc/bytes", all.subarray(off, off + MiB), ct)).status, 204)
  const res = await stream({ url: `${srv.url}/v1/stream/dsc/bytes`, live: false })
  const got = Buffer.from(await res.body())
  assert.equal(got.length, all.length)
  assert.ok(got.equals(all), "the bytes differ")
})

test("ds-client - json() of a JSON stream larger than 1 MiB returns every message", async (t) => {
  const srv = await startServer({ t })
  const ct = "application/json"
  assert.equal((await createStream(srv.url, "dsc/json", ct)).status, 201)
  const fill = "x".repeat(1000)
  const n = 3000 // about 3 MiB
  for (let i = 0; i < n; i += 500) {
    const batch = Array.from({ length: 500 }, (_, k) => ({ i: i + k, fill }))
    assert.equal((await append(srv.url, "dsc/json", JSON.stringify(batch), ct)).status, 204)
  }
  const res = await stream({ url: `${srv.url}/v1/stream/dsc/json`, live: false })
  const items = await res.json()
  assert.equal(items.length, n)
  items.forEach((it, k) => assert.equal(it.i, k))
})

test("ds-client - IdempotentProducer writes exactly once, and a closed stream refuses another producer", async (t) => {
  const srv = await startServer({ t })
  const url = `${srv.url}/v1/stream/dsc/produced`
  const ds = await DurableStream.create({ url, contentType: "application/json" })
  const errors = []
  const producer = new IdempotentProducer(ds, "p1", { autoClaim: true, onError: (e) => errors.push(e) })
  for (let i = 0; i < 100; i++) producer.append(JSON.stringify({ i }))
  await producer.flush()
  assert.deepEqual(errors, [])
  const items = await (await stream({ url, live: false })).json()
  assert.deepEqual(items.map((x) => x.i), Array.from({ length: 100 }, (_, i) => i))

  // PROTOCOL.md §5.2.1: once a producer has closed the stream, any other
  // producer's request is a 409 with Stream-Closed: true; the closing
  // tuple itself stays idempotent.
  const close = { "Stream-Closed": "true", "Producer-Id": "p9", "Producer-Epoch": "0", "Producer-Seq": "0" }
  assert.equal((await fetch(url, { method: "POST", headers: close })).status, 204)
  assert.equal((await fetch(url, { method: "POST", headers: close })).status, 204)
  const late = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Producer-Id": "p2", "Producer-Epoch": "0", "Producer-Seq": "0" },
    body: JSON.stringify({ late: true }),
  })
  assert.equal(late.status, 409)
  assert.equal(late.headers.get("stream-closed"), "true")
  const lateClose = await fetch(url, {
    method: "POST",
    headers: { "Stream-Closed": "true", "Producer-Id": "p2", "Producer-Epoch": "0", "Producer-Seq": "0" },
  })
  assert.equal(lateClose.status, 409, "another producer's close of a closed stream")
  assert.equal(lateClose.headers.get("stream-closed"), "true")

  const other = new IdempotentProducer(ds, "p2", { autoClaim: true, onError: (e) => errors.push(e) })
  other.append(JSON.stringify({ late: true }))
  await other.flush().catch((e) => errors.push(e))
  assert.ok(errors.length > 0, "the client was told the stream is closed")
  const after = await (await stream({ url, live: false })).json()
  assert.equal(after.length, 100, "nothing was appended after the close")
})

test("ds-client - a live subscriber receives appends made after it started", async (t) => {
  const srv = await startServer({ t })
  const url = `${srv.url}/v1/stream/dsc/live`
  await DurableStream.create({ url, contentType: "application/json" })
  const ac = new AbortController()
  t.after(() => ac.abort())
  const res = await stream({ url, live: true, offset: "now", signal: ac.signal })
  const seen = []
  const done = new Promise((resolve) => {
    res.subscribeJson(async (batch) => {
      seen.push(...batch.items)
      if (seen.length >= 3) resolve()
    })
  })
  for (let i = 0; i < 3; i++)
    assert.equal((await append(srv.url, "dsc/live", JSON.stringify({ i }), "application/json")).status, 204)
  await done
  assert.deepEqual(seen.map((x) => x.i), [0, 1, 2])
})
