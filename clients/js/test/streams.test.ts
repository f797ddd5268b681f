// Raw Durable Streams through the SDK's reader (client.readPage and live
// subscriptions), the cases the Durable Streams client conformance suite
// cares about, in our own words: a byte stream reads the same over SSE
// (base64 on the wire) as over long-poll and catch-up; the three ways of
// reading a JSON stream agree on items and offsets; a closed stream ends
// every subscription, one started at its tail too; "now" skips history;
// a subscription from any offset the server gave reads exactly what follows it; a missing or
// deleted stream ends a subscription with a 404 after one request.
import assert from "node:assert/strict"
import { test } from "node:test"

import type { Batch, Subscription } from "../src/live.js"
import { ParleyError } from "../src/transport.js"
import { createClient, startServer } from "./lib/server.js"

const LIVE = ["sse", "long-poll"] as const

async function setup(t: any, fetchImpl?: typeof fetch) {
  const srv = await startServer(t, ["--long-poll-timeout", "500"])
  const c = createClient({ baseUrl: srv.url, outbox: "memory", tabs: false, retry: { retries: 2, baseDelayMs: 20, maxDelayMs: 100 }, fetch: fetchImpl })
  const raw = async (method: string, path: string, headers: Record<string, string> = {}, body?: string | Uint8Array) => {
    const res = await fetch(`${srv.url}/v1/stream/${path}`, { method, headers, body: body as BodyInit | undefined })
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`)
    return res
  }
  return { srv, c, raw }
}

/** Equal texts, told briefly (the texts here are long). */
function sameText(got: string, want: string, what: string) {
  let i = 0
  while (i < got.length && got[i] === want[i]) i++
  assert.ok(got === want, `${what}: ${got.length} chars for ${want.length}, first difference at ${i}: ${JSON.stringify(got.slice(i, i + 40))}`)
}

/** Batches of a subscription until `stop(batch)` (or the stream's end). */
async function batches<T>(sub: Subscription<T>, stop: (b: Batch<T>) => boolean = (b) => b.upToDate): Promise<Batch<T>[]> {
  const out: Batch<T>[] = []
  try {
    for await (const b of sub.batches()) {
      out.push(b)
      if (stop(b)) break
    }
  } finally {
    sub.close()
  }
  return out
}

test("streams - a byte stream reads the same text over SSE (base64 on the wire) as over long-poll and a catch-up read", { timeout: 30_000 }, async (t) => {
  const { c, raw } = await setup(t)
  await raw("PUT", "bytes", { "Content-Type": "application/octet-stream" })
  const parts = ["Hello World", " ünïcödé ✓ ", "f", "fo", "foo", "x".repeat(20_000)]
  for (const p of parts) await raw("POST", "bytes", { "Content-Type": "application/octet-stream" }, new TextEncoder().encode(p))
  const whole = parts.join("")

  const page = await c.readPage<string>("/v1/stream/bytes", "-1")
  sameText(page.items.join(""), whole, "catch-up")
  for (const live of LIVE) {
    const got = await batches(c.streams.subscribe<string>("bytes", { offset: "-1", live }))
    sameText(got.flatMap((b) => b.items).join(""), whole, live) // 20,000 bytes: a data event of two base64 lines
    assert.equal(got.at(-1)!.offset, page.offset, `${live}: ends at the tail`)
  }
})

test("streams - catch-up, long-poll and SSE read the same JSON items and reach the same offset", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  await c.streams.create("json")
  const values: unknown[] = [{ a: 1 }, "two", 3, null, { nested: { deep: [1, 2, 3] } }, "ünï ✓"]
  for (const v of values) await c.streams.append("json", v)
  await c.streams.append("json", [[1, 2], [3]]) // an array appends each element
  const want = [...values, [1, 2], [3]]

  const page = await c.streams.read("json", "-1")
  assert.deepEqual(page.items, want)
  assert.equal(page.upToDate, true)
  for (const live of LIVE) {
    const got = await batches(c.streams.subscribe("json", { offset: "-1", live }))
    assert.deepEqual(got.flatMap((b) => b.items), want, live)
    assert.equal(got.at(-1)!.offset, page.offset, live)
  }
})

test("streams - a subscription from any offset the server gave reads exactly what follows it, once", { timeout: 30_000 }, async (t) => {
  const { c, raw } = await setup(t)
  await c.streams.create("resume")
  const offsets: string[] = ["-1"] // offsets[i]: where item i starts
  for (let i = 0; i < 8; i++) {
    const res = await raw("POST", "resume", { "Content-Type": "application/json" }, JSON.stringify([i]))
    offsets.push(res.headers.get("stream-next-offset")!)
  }
  const tail = offsets.pop()!
  for (const live of LIVE)
    for (let i = 0; i < offsets.length; i++) {
      const got = await batches(c.streams.subscribe<number>("resume", { offset: offsets[i], live }))
      assert.deepEqual(got.flatMap((b) => b.items), Array.from({ length: 8 - i }, (_, k) => i + k), `${live} from item ${i}`)
      assert.equal(got.at(-1)!.offset, tail, `${live} from item ${i}: ends at the tail`)
    }
})

test("streams - a closed stream ends every subscription after its last items, one started at its tail too", { timeout: 30_000 }, async (t) => {
  const { c, raw } = await setup(t)
  await c.streams.create("closing")
  await c.streams.append("closing", ["a", "b"])
  await raw("POST", "closing", { "Content-Type": "application/json", "Stream-Closed": "true" }, JSON.stringify(["last"]))
  const page = await c.streams.read("closing", "-1")
  assert.deepEqual(page.items, ["a", "b", "last"])
  assert.equal(page.closed, true)
  for (const live of LIVE) {
    // No stop condition: the subscription must end by itself.
    const all = await batches(c.streams.subscribe("closing", { offset: "-1", live }), () => false)
    assert.deepEqual(all.flatMap((b) => b.items), ["a", "b", "last"], live)
    assert.equal(all.at(-1)!.closed, true, live)
    const atTail = await batches(c.streams.subscribe("closing", { offset: page.offset, live }), () => false)
    assert.deepEqual(atTail.flatMap((b) => b.items), [], `${live}: nothing after the tail`)
    assert.equal(atTail.at(-1)?.closed, true, `${live}: told it is closed`)
  }
})

test("streams - offset now skips what is there and delivers only what comes next", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  await c.streams.create("now")
  await c.streams.append("now", ["old1", "old2"])
  for (const live of LIVE) {
    const sub = c.streams.subscribe<string>("now", { offset: "now", live })
    const got: string[] = []
    const reading = (async () => {
      for await (const item of sub) {
        got.push(item)
        if (item === `new-${live}`) break
      }
      sub.close()
    })()
    await new Promise((r) => setTimeout(r, 300))
    await c.streams.append("now", `new-${live}`)
    await reading
    assert.deepEqual(got, live === "sse" ? ["new-sse"] : ["new-long-poll"], live)
  }
})

test("streams - a missing or deleted stream ends a subscription with 404 after a single request", { timeout: 30_000 }, async (t) => {
  const calls: string[] = []
  const counting: typeof fetch = (input, init) => {
    calls.push(String(input instanceof Request ? input.url : input))
    return fetch(input, init)
  }
  const { c, raw } = await setup(t, counting)
  await c.streams.create("gone")
  await raw("DELETE", "gone")
  for (const path of ["never-was", "gone"])
    for (const live of LIVE) {
      calls.length = 0
      await assert.rejects(
        batches(c.streams.subscribe(path, { offset: "-1", live })),
        (e: unknown) => e instanceof ParleyError && e.status === 404,
        `${path} ${live}`,
      )
      assert.equal(calls.length, 1, `${path} ${live}: not retried (${calls.join(", ")})`)
    }
})

test("streams - a text stream's data that looks like JSON stays text, in a catch-up read and over long-poll", { timeout: 30_000 }, async (t) => {
  const { c, raw } = await setup(t)
  await raw("PUT", "text", { "Content-Type": "text/plain" })
  await raw("POST", "text", { "Content-Type": "text/plain" }, "42")
  const page = await c.readPage("/v1/stream/text", "-1")
  assert.deepEqual(page.items, ["42"], "catch-up")
  const got = await batches(c.streams.subscribe("text", { offset: "-1", live: "long-poll" }))
  assert.deepEqual(got.flatMap((b) => b.items), ["42"], "long-poll")
})
