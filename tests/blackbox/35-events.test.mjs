// The event feed, GET /v1/events: a read-only JSON-mode Durable Stream of
// the caller's changes — every change once, in commit order, resumable from
// an offset, live over long-poll and SSE, per user (the admin sees all).
import assert from "node:assert/strict"
import http from "node:http"
import { test } from "node:test"

import { RFC3339_MS, client, expectError, expectStatus, openSse, readEvents, userToken } from "./lib/api.mjs"
import { positionOf, request } from "./lib/http.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-events-1"
const SECRET = "test-jwt-secret-events-1"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]

function startAuthServer(t, extra = []) {
  return startServer({ t, args: [...AUTH_ARGS, ...extra] })
}

const JSON_CT = { "Content-Type": "application/json" }

/** The fields that identify an event, for comparing sequences. */
function brief(e) {
  if (e.document) return `${e.user} ${e.type} ${e.document.collection}/${e.document.id}@${e.document.version}`
  if (e.stream !== undefined) return `${e.user} ${e.type} ${e.stream}`
  return `${e.user} ${e.type}`
}

function checkEvent(e, user) {
  assert.equal(typeof e.type, "string", `event type: ${JSON.stringify(e)}`)
  assert.match(e.at, RFC3339_MS, `event at: ${JSON.stringify(e)}`)
  if (user) assert.equal(e.user, user, `event user: ${JSON.stringify(e)}`)
  assert.equal(typeof e.data, "object", `event data: ${JSON.stringify(e)}`)
  assert.ok(e.data !== null, `event data: ${JSON.stringify(e)}`)
  if (e.type.startsWith("document.")) {
    assert.deepEqual(Object.keys(e.document).sort(), ["collection", "id", "version"], `event document: ${JSON.stringify(e)}`)
    assert.ok(Number.isInteger(e.document.version) && e.document.version >= 1)
  } else if (e.type.startsWith("stream.")) {
    assert.equal(typeof e.stream, "string", `event stream: ${JSON.stringify(e)}`)
  } else {
    assert.fail(`unexpected event type ${e.type}`)
  }
}

test("events - every change appears once, in commit order", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const empty = await readEvents(alice)
  assert.deepEqual(empty.events, [], "a new user's feed is empty")
  assert.equal(positionOf(empty.next), 0)
  assert.match(empty.res.headers["content-type"], /^application\/json/)

  const expected = []
  expectStatus(await alice.put("/v1/documents/notes/a", { v: 1 }), 201)
  expected.push("alice document.created notes/a@1")
  expectStatus(await alice.put("/v1/documents/notes/a", { v: 2 }), 200)
  expected.push("alice document.updated notes/a@2")
  expectStatus(await alice.patch("/v1/documents/notes/a", { w: 3 }), 200)
  expected.push("alice document.updated notes/a@3")
  const posted = expectStatus(await alice.post("/v1/documents/notes", { p: 1 }), 201)
  expected.push(`alice document.created notes/${posted.id}@1`)
  expectStatus(await alice.del("/v1/documents/notes/a"), 204)
  expected.push("alice document.deleted notes/a@4")
  expectStatus(await alice.call("PUT", "/v1/stream/chat/1", { headers: JSON_CT }), 201)
  expected.push("alice stream.created chat/1")
  expectStatus(await alice.call("PUT", "/v1/stream/chat/1", { headers: JSON_CT }), 200) // idempotent create: no change
  expectStatus(await alice.post("/v1/stream/chat/1", { role: "user", text: "hi" }), 204)
  expectStatus(await alice.call("POST", "/v1/stream/chat/1", { headers: { "Stream-Closed": "true" } }), 204)
  expected.push("alice stream.closed chat/1")
  expectStatus(await alice.del("/v1/stream/chat/1"), 204)
  expected.push("alice stream.deleted chat/1")

  const { events, next, res } = await readEvents(alice)
  for (const e of events) checkEvent(e, "alice")
  assert.deepEqual(events.map(brief), expected)
  assert.equal(positionOf(next), expected.length, "Stream-Next-Offset counts the events")
  assert.equal(res.headers["stream-up-to-date"], "true")
  for (let i = 1; i < events.length; i++) assert.ok(events[i].at >= events[i - 1].at, "times do not go back")
  // The document events carry the versions the writes answered.
  const created = events.find((e) => e.document?.id === posted.id)
  assert.equal(created.document.version, posted.version)
  // HEAD has the same tail.
  const head = await alice.head("/v1/events")
  assert.equal(head.status, 200)
  assert.equal(head.headers["stream-next-offset"], next)
})

test("events - concurrent changes appear once each, in commit order", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  t.after(() => agent.destroy())
  expectStatus(await alice.put("/v1/documents/hot/doc", { n: 0 }), 201)
  const n = 40
  // Patches of one document race; each gets its own version, and the feed
  // lists the versions in the order they were committed: 2, 3, ... n+1.
  const patches = await Promise.all(Array.from({ length: n }, (_, i) => alice.patch("/v1/documents/hot/doc", { [`k${i}`]: i }, { agent })))
  const versions = patches.map((r) => expectStatus(r, 200, "concurrent PATCH").version).sort((a, b) => a - b)
  assert.deepEqual(versions, Array.from({ length: n }, (_, i) => i + 2), "each PATCH made one version")
  // Creates of different documents race as well.
  const creates = await Promise.all(Array.from({ length: n }, (_, i) => alice.put(`/v1/documents/many/d${i}`, { i }, { agent })))
  for (const r of creates) expectStatus(r, 201, "concurrent PUT")

  const { events, next } = await readEvents(alice)
  assert.equal(events.length, 1 + 2 * n, "one event per change")
  assert.equal(positionOf(next), events.length)
  const hot = events.filter((e) => e.document.collection === "hot").map((e) => e.document.version)
  assert.deepEqual(hot, Array.from({ length: n + 1 }, (_, i) => i + 1), "versions of one document in commit order")
  const many = events.filter((e) => e.document.collection === "many").map((e) => e.document.id)
  assert.equal(new Set(many).size, n, "every create once")
  assert.deepEqual([...many].sort(), Array.from({ length: n }, (_, i) => `d${i}`).sort())
  // The feed order agrees with the list order (newest change first).
  const listed = expectStatus(await alice.get("/v1/documents/many?limit=100"), 200).items.map((d) => d.id)
  assert.deepEqual(listed, [...many].reverse(), "feed order and list order agree")
})

test("events - a reader resumes from an offset and sees only the new events", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  for (let i = 0; i < 5; i++) expectStatus(await alice.put(`/v1/documents/resume/d${i}`, { i }), 201)
  const first = await readEvents(alice)
  assert.equal(first.events.length, 5)

  // Nothing new yet: an empty read at the tail.
  const idle = await readEvents(alice, first.next)
  assert.deepEqual(idle.events, [])
  assert.equal(idle.next, first.next)

  expectStatus(await alice.patch("/v1/documents/resume/d1", { more: true }), 200)
  expectStatus(await alice.del("/v1/documents/resume/d2"), 204)
  expectStatus(await alice.call("PUT", "/v1/stream/resume/s", { headers: JSON_CT }), 201)
  const second = await readEvents(alice, first.next)
  assert.deepEqual(second.events.map(brief), [
    "alice document.updated resume/d1@2",
    "alice document.deleted resume/d2@2",
    "alice stream.created resume/s",
  ])
  assert.equal(positionOf(second.next), 8)

  // Every offset in between resumes exactly after that event.
  const all = await readEvents(alice)
  for (let k = 0; k <= all.events.length; k++) {
    const offset = `0000000000000000_${String(k).padStart(16, "0")}`
    const part = await readEvents(alice, offset)
    assert.deepEqual(part.events, all.events.slice(k), `resume from position ${k}`)
  }
  // offset=now is the tail; a malformed offset or one past the tail is a 400.
  const now = await alice.get("/v1/events?offset=now")
  assert.equal(now.status, 200)
  assert.equal(now.headers["stream-next-offset"], all.next)
  for (const bad of ["garbage", "0000000000000000_0000000000000099", "-2"])
    expectError(await alice.get(`/v1/events?offset=${bad}`), 400, null, `offset=${bad}`)
})

test("events - long-poll on the feed wakes on the next change", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--long-poll-timeout", "5000"])
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  expectStatus(await alice.put("/v1/documents/poll/a", { v: 1 }), 201)
  const { next } = await readEvents(alice)
  const started = Date.now()
  const poll = alice.get(`/v1/events?offset=${next}&live=long-poll`, { timeoutMs: 10_000 })
  await new Promise((r) => setTimeout(r, 300))
  // Bob's change does not wake alice's poll with bob's event.
  expectStatus(await bob.put("/v1/documents/poll/b", { v: 1 }), 201)
  expectStatus(await alice.put("/v1/documents/poll/a", { v: 2 }), 200)
  const res = await poll
  assert.equal(res.status, 200, `long-poll: ${res.status} ${res.text}`)
  assert.deepEqual(JSON.parse(res.text).map(brief), ["alice document.updated poll/a@2"])
  assert.equal(positionOf(res.headers["stream-next-offset"]), 2)
  assert.ok(Date.now() - started < 4000, "answered on the change, not at the timeout")

  // With nothing new, the poll ends with 204 at the timeout.
  const quiet = await alice.get(`/v1/events?offset=${res.headers["stream-next-offset"]}&live=long-poll`, { timeoutMs: 15_000 })
  assert.equal(quiet.status, 204, `idle long-poll: ${quiet.status} ${quiet.text}`)
  assert.equal(quiet.headers["stream-next-offset"], res.headers["stream-next-offset"])
})

test("events - a stream that expires by TTL puts stream.deleted in the feed, as a DELETE does, and wakes a long-poll", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--long-poll-timeout", "8000"])
  const alice = client(srv, userToken("alice", SECRET))
  const admin = client(srv, ADMIN_KEY)
  expectStatus(await alice.call("PUT", "/v1/stream/tmp/gone", { headers: JSON_CT }), 201)
  expectStatus(await alice.call("PUT", "/v1/stream/tmp/short", { headers: { ...JSON_CT, "Stream-TTL": "1" } }), 201)
  expectStatus(await alice.del("/v1/stream/tmp/gone"), 204)
  const { events: before, next } = await readEvents(alice)
  assert.deepEqual(before.map(brief), ["alice stream.created tmp/gone", "alice stream.created tmp/short", "alice stream.deleted tmp/gone"])
  // Nothing touches tmp/short from here on: it expires about 1 s after its
  // creation, and maintenance (about once a second) deletes it.
  const started = Date.now()
  const poll = await alice.get(`/v1/events?offset=${next}&live=long-poll`, { timeoutMs: 15_000 })
  assert.equal(poll.status, 200, `long-poll: ${poll.status} ${poll.text}`)
  const woke = JSON.parse(poll.text)
  for (const e of woke) checkEvent(e, "alice")
  assert.deepEqual(woke.map(brief), ["alice stream.deleted tmp/short"], "expiry's event wakes the feed's long-poll")
  assert.ok(Date.now() - started < 6000, "answered on the expiry, not at the timeout")
  assert.equal((await alice.get("/v1/stream/tmp/short")).status, 404, "the expired stream is gone")
  // The event has the shape of a DELETE's, in alice's feed and in the feed of all.
  const explicit = before[2]
  assert.deepEqual(Object.keys(woke[0]).sort(), Object.keys(explicit).sort())
  assert.deepEqual(woke[0].data, explicit.data)
  const all = await readEvents(admin)
  assert.deepEqual(all.events.map(brief).filter((b) => b.includes("tmp/")), [...before.map(brief), "alice stream.deleted tmp/short"])
  // Once: later ticks add nothing.
  await new Promise((r) => setTimeout(r, 1500))
  assert.deepEqual((await readEvents(alice)).events.map(brief).slice(3), ["alice stream.deleted tmp/short"])
})

test("events - a PUT at the path of an expired stream puts the old one's stream.deleted first", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const past = { ...JSON_CT, "Stream-Expires-At": "2001-01-01T00:00:00Z" }
  // Expired as soon as it is made; whether or not maintenance sweeps it
  // before the next PUT, the feed tells the same story.
  expectStatus(await alice.call("PUT", "/v1/stream/tmp/old", { headers: past }), 201)
  expectStatus(await alice.call("PUT", "/v1/stream/tmp/old", { headers: past }), 201)
  expectStatus(await bob.call("PUT", "/v1/stream/tmp/old", { headers: JSON_CT }), 201)
  assert.deepEqual((await readEvents(alice)).events.map(brief), ["alice stream.created tmp/old", "alice stream.deleted tmp/old", "alice stream.created tmp/old", "alice stream.deleted tmp/old"])
  assert.deepEqual((await readEvents(bob)).events.map(brief), ["bob stream.created tmp/old"])
})

test("events - a user sees only their own events; the admin sees everyone's", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const admin = client(srv, ADMIN_KEY)
  const asBob = client(srv, ADMIN_KEY, { headers: { "Parley-User": "bob" } })

  const all = []
  expectStatus(await alice.put("/v1/documents/settings/x", { a: 1 }), 201)
  all.push("alice document.created settings/x@1")
  expectStatus(await bob.put("/v1/documents/settings/x", { b: 1 }), 201)
  all.push("bob document.created settings/x@1")
  expectStatus(await bob.call("PUT", "/v1/stream/bob/s", { headers: JSON_CT }), 201)
  all.push("bob stream.created bob/s")
  expectStatus(await alice.patch("/v1/documents/settings/x", { a: 2 }), 200)
  all.push("alice document.updated settings/x@2")
  // The admin acting as bob writes bob's events.
  expectStatus(await asBob.put("/v1/documents/settings/y", { by: "admin" }), 201)
  all.push("bob document.created settings/y@1")
  // Failed attempts on another user's things leave no trace.
  expectError(await bob.del("/v1/documents/settings/nope"), 404, "not_found")
  expectError(await alice.del("/v1/stream/bob/s"), 404, null, "alice deletes bob's stream")
  expectError(await alice.call("PUT", "/v1/stream/bob/s", { headers: JSON_CT }), 409, null, "alice takes bob's path")
  expectStatus(await bob.del("/v1/documents/settings/x"), 204)
  all.push("bob document.deleted settings/x@2")

  const mine = (u) => all.filter((s) => s.startsWith(`${u} `))
  assert.deepEqual((await readEvents(alice)).events.map(brief), mine("alice"), "alice's feed")
  assert.deepEqual((await readEvents(bob)).events.map(brief), mine("bob"), "bob's feed")
  assert.deepEqual((await readEvents(asBob)).events.map(brief), mine("bob"), "the admin acting as bob sees bob's feed")
  const everything = await readEvents(admin)
  for (const e of everything.events) checkEvent(e)
  assert.deepEqual(everything.events.map(brief), all, "the admin's feed has everyone's events in commit order")
  assert.equal(positionOf(everything.next), all.length)
  // A new user starts with an empty feed.
  assert.deepEqual((await readEvents(client(srv, userToken("carol", SECRET)))).events, [])
})

test("events - the feed is read-only: writes are 405 with Allow", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  expectStatus(await alice.put("/v1/documents/ro/a", { v: 1 }), 201)
  for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
    const res = await alice.call(method, "/v1/events", { body: '{"type":"document.created"}', headers: JSON_CT })
    expectError(res, 405, "method_not_allowed", `${method} /v1/events`)
    const allow = (res.headers.allow ?? "").split(/\s*,\s*/)
    assert.ok(allow.includes("GET"), `Allow has GET: ${res.headers.allow}`)
    assert.ok(!allow.includes(method), `Allow does not have ${method}: ${res.headers.allow}`)
  }
  const admin = client(srv, ADMIN_KEY)
  expectError(await admin.post("/v1/events", { type: "forged" }), 405, "method_not_allowed", "the admin POSTs too")
  assert.equal((await readEvents(alice)).events.length, 1, "nothing was added")
  expectError(await alice.get("/v1/events/anything"), 404, null, "below /v1/events")
  // Without a token, the feed is 401.
  expectError(await client(srv, null).get("/v1/events?offset=-1"), 401, "unauthorized")
})

test("events - refused and replayed writes add no events", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const first = await alice.post("/v1/documents/quiet", { v: 1 }, { headers: { "Idempotency-Key": "q1" } })
  expectStatus(first, 201)
  const before = await readEvents(alice)
  assert.equal(before.events.length, 1)
  const id = first.json().id
  const p = `/v1/documents/quiet/${id}`
  // A replay, a reuse, a stale write, create-only on an existing id, bad
  // bodies, bad names, a missing document, an over-limit body.
  expectStatus(await alice.post("/v1/documents/quiet", { v: 1 }, { headers: { "Idempotency-Key": "q1" } }), 201)
  expectError(await alice.post("/v1/documents/quiet", { v: 2 }, { headers: { "Idempotency-Key": "q1" } }), 422, "idempotency_key_reused")
  expectError(await alice.put(p, { v: 9 }, { headers: { "If-Match": '"7"' } }), 412, "precondition_failed")
  expectError(await alice.put(p, { v: 9 }, { headers: { "If-None-Match": "*" } }), 412, "precondition_failed")
  expectError(await alice.call("PUT", p, { body: "[1]", headers: JSON_CT }), 400, "invalid_document")
  expectError(await alice.call("PATCH", p, { body: "{", headers: JSON_CT }), 400, "invalid_json")
  expectError(await alice.put("/v1/documents/Bad/x", { v: 1 }), 400, "invalid_collection")
  expectError(await alice.del("/v1/documents/quiet/missing"), 404, "not_found")
  expectError(await alice.call("PUT", "/v1/documents/quiet/huge", { body: `{"s":"${"x".repeat(1_600_000)}"}`, headers: JSON_CT }), 413)
  const after = await readEvents(alice)
  assert.deepEqual(after.events, before.events, "no event was added")
  assert.equal(after.next, before.next)
})

test("events - two SSE clients of one user see the same events in the same order", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--sse-recycle", "60000"])
  const aliceToken = userToken("alice", SECRET)
  const alice = client(srv, aliceToken)
  const bob = client(srv, userToken("bob", SECRET))
  expectStatus(await alice.put("/v1/documents/live/before", { v: 0 }), 201)

  const auth = (token) => ({ Authorization: `Bearer ${token}` })
  const sseA = openSse(srv.port, "/v1/events?offset=-1&live=sse", auth(aliceToken))
  const sseB = openSse(srv.port, "/v1/events?offset=-1&live=sse", auth(aliceToken))
  const sseBob = openSse(srv.port, "/v1/events?offset=now&live=sse", auth(bob.token))
  t.after(() => [sseA, sseB, sseBob].forEach((s) => s.close()))
  const upToDate = (s) => s.events.some((e) => e.type === "control" && JSON.parse(e.data).upToDate === true)
  await Promise.all([sseA, sseB, sseBob].map((s, i) => s.waitFor(upToDate, 5000, `SSE client ${i} catches up`)))
  assert.equal(sseA.status, 200)
  assert.match(sseA.headers["content-type"], /^text\/event-stream/)

  // Changes made one by one and at once, from several connections.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  t.after(() => agent.destroy())
  for (let i = 0; i < 5; i++) expectStatus(await alice.put(`/v1/documents/live/s${i}`, { i }), 201)
  const burst = await Promise.all(Array.from({ length: 15 }, (_, i) => alice.patch("/v1/documents/live/before", { [`p${i}`]: i }, { agent })))
  for (const r of burst) expectStatus(r, 200)
  expectStatus(await alice.call("PUT", "/v1/stream/live/s", { headers: JSON_CT }), 201)
  expectStatus(await alice.del("/v1/stream/live/s"), 204)
  const total = 1 + 5 + 15 + 2

  const hasAll = (s) => s.messages().length >= total
  await Promise.all([sseA.waitFor(hasAll, 10_000, "SSE client A gets every event"), sseB.waitFor(hasAll, 10_000, "SSE client B gets every event")])
  const a = sseA.messages()
  const b = sseB.messages()
  assert.equal(a.length, total, "client A: each event once")
  assert.deepEqual(b, a, "both clients see the same events in the same order")
  const catchUp = await readEvents(alice)
  assert.deepEqual(a, catchUp.events, "SSE and catch-up agree")
  const versions = a.filter((e) => e.document?.id === "before").map((e) => e.document.version)
  assert.deepEqual(versions, Array.from({ length: 16 }, (_, i) => i + 1))
  // The control events carry offsets that resume the feed.
  const controls = sseA.events.filter((e) => e.type === "control").map((e) => JSON.parse(e.data))
  assert.equal(controls.at(-1).streamNextOffset, catchUp.next)
  // Bob's subscriber saw none of alice's events.
  expectStatus(await bob.put("/v1/documents/live/bob", { v: 1 }), 201)
  await sseBob.waitFor((s) => s.messages().length >= 1, 5000, "bob's SSE gets his own event")
  assert.deepEqual(sseBob.messages().map(brief), ["bob document.created live/bob@1"])
})

test("events - the feed and its offsets survive restart and kill -9", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const admin = client(srv, ADMIN_KEY)
  expectStatus(await alice.put("/v1/documents/keep/a", { v: 1 }), 201)
  expectStatus(await alice.put("/v1/documents/keep/a", { v: 2 }), 200)
  const before = await readEvents(alice)
  const adminBefore = await readEvents(admin)
  assert.equal(await srv.stop(), 0)
  await srv.restart()
  assert.deepEqual(await readEvents(alice).then((r) => r.events), before.events)
  expectStatus(await alice.del("/v1/documents/keep/a"), 204)
  await srv.kill9()
  await srv.restart()
  const after = await readEvents(alice, before.next)
  assert.deepEqual(after.events.map(brief), ["alice document.deleted keep/a@3"])
  const all = await readEvents(alice)
  assert.deepEqual(all.events.slice(0, before.events.length), before.events, "old events unchanged")
  const adminAfter = await readEvents(admin, adminBefore.next)
  assert.deepEqual(adminAfter.events.map(brief), ["alice document.deleted keep/a@3"])
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})
