// Transport: retries honour Retry-After, back off with full jitter, and stop
// on a 4xx that no retry can fix. Fake fetches, no server.
import assert from "node:assert/strict"
import { test } from "node:test"

import { ParleyError, Transport, backoffDelay, parseRetryAfter } from "../src/index.js"
import { createClient } from "./lib/server.js"

function fakeFetch(answers: Array<() => Response>) {
  const calls: Array<{ at: number; url: string; init: RequestInit }> = []
  const f = async (url: string, init: RequestInit) => {
    calls.push({ at: Date.now(), url, init })
    const next = answers.shift()
    if (!next) throw new Error("no more answers")
    return next()
  }
  return { f, calls }
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } })

test("transport - 429 and 503 are retried after exactly Retry-After, with the same Idempotency-Key and body", async () => {
  const { f, calls } = fakeFetch([
    json(429, { error: { code: "rate_limited", message: "slow down", details: {} } }, { "Retry-After": "1" }),
    json(503, { error: { code: "unavailable", message: "busy", details: {} } }, { "Retry-After": "1" }),
    json(201, { id: "C1" }),
  ])
  // random() = 0 makes every jittered backoff 0 ms: only Retry-After can explain a wait.
  const c = createClient({ baseUrl: "http://parley.test", fetch: f, outbox: "memory", random: () => 0 })
  const t0 = Date.now()
  const conv = await c.conversations.create({ title: "x" })
  assert.equal(conv.id, "C1")
  assert.equal(calls.length, 3)
  assert.ok(calls[1].at - calls[0].at >= 950, `second attempt after ${calls[1].at - calls[0].at} ms`)
  assert.ok(calls[2].at - calls[1].at >= 950, `third attempt after ${calls[2].at - calls[1].at} ms`)
  assert.ok(Date.now() - t0 < 5000)
  const keys = calls.map((c) => (c.init.headers as Record<string, string>)["Idempotency-Key"])
  assert.match(keys[0], /^[0-9a-f-]{36}$/)
  assert.deepEqual(new Set(keys).size, 1, "one key for every attempt")
  assert.deepEqual(new Set(calls.map((c) => c.init.body)).size, 1, "the same bytes every attempt")
  c.close()
})

test("transport - 409 idempotency_key_in_flight is retried; other 4xx are not", async () => {
  const { f, calls } = fakeFetch([
    json(409, { error: { code: "idempotency_key_in_flight", message: "wait", details: {} } }, { "Retry-After": "0" }),
    json(201, { id: "C2" }),
  ])
  const tr = new Transport({ baseUrl: "http://parley.test", fetch: f, random: () => 0 })
  const a = await tr.request({ method: "POST", path: "/v1/conversations", json: {}, idempotencyKey: "k1" })
  assert.equal(a.data.id, "C2")
  assert.equal(calls.length, 2)

  for (const [status, code] of [[400, "invalid_request"], [404, "not_found"], [409, "invalid_transition"], [422, "idempotency_key_reused"]] as const) {
    const one = fakeFetch([json(status, { error: { code, message: "no", details: { x: 1 } } }), json(200, {})])
    const t2 = new Transport({ baseUrl: "http://parley.test", fetch: one.f, random: () => 0 })
    await assert.rejects(t2.request({ method: "POST", path: "/x", json: {} }), (e: unknown) => {
      assert.ok(e instanceof ParleyError)
      assert.equal(e.status, status)
      assert.equal(e.code, code)
      assert.deepEqual(e.details, { x: 1 })
      return true
    })
    assert.equal(one.calls.length, 1, `${status} is not retried`)
  }
})

test("transport - network errors are retried with full-jitter backoff, up to `retries`", async () => {
  let n = 0
  const f = async () => {
    n++
    throw new TypeError("fetch failed")
  }
  const tr = new Transport({ baseUrl: "http://parley.test", fetch: f, retry: { retries: 3, baseDelayMs: 1 } })
  await assert.rejects(tr.request({ method: "GET", path: "/v1/conversations" }), (e: unknown) => e instanceof ParleyError && e.status === 0 && e.code === "network_error")
  assert.equal(n, 4)
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(30_000, 250 * 2 ** attempt)
    assert.equal(backoffDelay(attempt, {}, () => 0), 0)
    assert.equal(backoffDelay(attempt, {}, () => 0.999999), Math.floor(0.999999 * cap))
  }
  assert.equal(parseRetryAfter("3"), 3000)
  const d = parseRetryAfter(new Date(Date.now() + 5000).toUTCString())!
  assert.ok(d > 3000 && d <= 5000, `${d}`)
})
