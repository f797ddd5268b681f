// The chat model: conversations, messages, sessions with resumable token
// streams, and snapshots — the flow a chat front end and its workers run,
// exactly-once retries (also across kill -9), gap-free seq under
// concurrency, the session state machine, leases, cancel, ownership,
// frozen snapshots, limits and list shapes.
import assert from "node:assert/strict"
import { test } from "node:test"

import { RFC3339_MS, client, expectError, expectStatus, openSse, readEvents, sleep, userToken } from "./lib/api.mjs"
import { positionOf, request } from "./lib/http.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-chat-1"
const SECRET = "test-jwt-secret-chat-1"

async function setup(t, extra = []) {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET, ...extra] })
  return {
    srv,
    alice: client(srv, userToken("alice", SECRET)),
    bob: client(srv, userToken("bob", SECRET)),
    worker: client(srv, ADMIN_KEY),
    anon: client(srv, null),
  }
}

const auth = (c) => ({ Authorization: `Bearer ${c.token}` })

async function newConversation(c, body = { title: "a chat" }) {
  return expectStatus(await c.post("/v1/conversations", body), 201, "POST /v1/conversations")
}

async function send(c, convId, body) {
  return expectStatus(await c.post(`/v1/conversations/${convId}/messages`, body), 201, "POST messages")
}

async function claim(worker, convId, leaseSeconds = 60) {
  const body = { lease_seconds: leaseSeconds }
  if (convId) body.conversation_id = convId
  return expectStatus(await worker.post("/v1/sessions/claim", body), 200, "claim")
}

/** Append one JSON value to a session's stream, optionally as an idempotent producer. */
function appendOut(worker, sid, value, { producer, seq, headers = {} } = {}) {
  const h = { "Content-Type": "application/json", ...headers }
  if (producer !== undefined) Object.assign(h, { "Producer-Id": producer, "Producer-Epoch": "0", "Producer-Seq": String(seq) })
  return worker.call("POST", `/v1/sessions/${sid}/stream`, { body: JSON.stringify(value), headers: h })
}

async function getSession(c, sid) {
  return expectStatus(await c.get(`/v1/sessions/${sid}`), 200, `GET session ${sid}`)
}

/** Poll fn until it returns a truthy value (bounded). */
async function waitUntil(fn, ms, what) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(50)
  }
}

/** Every message of a JSON stream view, following catch-up pages to the tail. */
async function readStream(c, path) {
  const out = []
  let offset = "-1"
  for (let page = 0; page < 1000; page++) {
    const res = await c.get(`${path}?offset=${offset}`)
    assert.equal(res.status, 200, `GET ${path}?offset=${offset}: ${res.text.slice(0, 300)}`)
    out.push(...res.json())
    offset = res.headers["stream-next-offset"]
    if (res.headers["stream-up-to-date"] === "true") return out
  }
  throw new Error(`readStream: more than 1000 pages in ${path}`)
}

async function allMessages(c, convId) {
  const body = expectStatus(await c.get(`/v1/conversations/${convId}/messages?limit=100`), 200, "messages")
  return body.items
}

function checkSessionShape(s) {
  for (const k of ["id", "conversation_id", "message_id", "status", "attempt", "lease_expires_at", "error", "created_at", "updated_at", "stream"])
    assert.ok(k in s, `session has ${k}: ${JSON.stringify(s)}`)
  assert.match(s.created_at, RFC3339_MS)
  assert.match(s.updated_at, RFC3339_MS)
  assert.equal(s.stream, `/v1/sessions/${s.id}/stream`)
}

test("chat - the whole flow of a chat front end: send, claim, stream, resume, complete", { timeout: 60_000 }, async (t) => {
  const { srv, alice, worker } = await setup(t)
  const conv = await newConversation(alice, { title: "Trip", metadata: { lang: "en" } })
  assert.equal(conv.owner, "alice")
  assert.equal(conv.version, 1)
  assert.equal(conv.message_count, 0)
  assert.equal(conv.last_message_at, null)
  assert.match(conv.created_at, RFC3339_MS)
  assert.deepEqual(conv.metadata, { lang: "en" })

  const msg = await send(alice, conv.id, { role: "user", content: "Plan a trip", process: true })
  assert.equal(msg.seq, 1)
  assert.equal(msg.role, "user")
  assert.equal(msg.content, "Plan a trip")
  assert.equal(typeof msg.session_id, "string")
  assert.equal(msg.session.id, msg.session_id)
  assert.equal(msg.session.status, "pending")
  assert.equal(msg.session.message_id, msg.id)
  assert.equal(msg.session.attempt, 1)
  checkSessionShape(msg.session)
  const sid = msg.session_id

  const pending = expectStatus(await alice.get(`/v1/conversations/${conv.id}/sessions/latest`), 200)
  assert.equal(pending.status, "pending")

  const claimed = await claim(worker, null, 30)
  assert.equal(claimed.id, sid)
  assert.equal(claimed.status, "processing")
  assert.match(claimed.lease_expires_at, RFC3339_MS)
  expectStatus(await worker.post("/v1/sessions/claim", {}), 204, "nothing else is pending")

  const tokens = Array.from({ length: 200 }, (_, i) => ({ type: "delta", i, text: `t${i} ` }))
  for (let i = 0; i < 100; i++) {
    const res = await appendOut(worker, sid, tokens[i], { producer: "w1", seq: i })
    assert.equal(res.status, 200, `append ${i}: ${res.status} ${res.text}`)
    if (i % 10 === 0) {
      // The worker's retry of the same chunk stores nothing.
      const again = await appendOut(worker, sid, tokens[i], { producer: "w1", seq: i })
      assert.equal(again.status, 204, `retry of chunk ${i}: ${again.status} ${again.text}`)
    }
  }

  // The client reads the first half live, then goes away.
  const sse = openSse(srv.port, `/v1/sessions/${sid}/stream?offset=-1&live=sse`, auth(alice))
  await sse.waitFor(
    (s) => s.events.some((e) => e.type === "control" && positionOf(JSON.parse(e.data).streamNextOffset) === 100),
    10_000,
    "the first half over SSE",
  )
  sse.close()
  assert.equal(sse.status, 200)
  assert.deepEqual(sse.messages(), tokens.slice(0, 100))
  const controls = sse.events.filter((e) => e.type === "control").map((e) => JSON.parse(e.data))
  const resumeAt = controls.at(-1).streamNextOffset

  // The worker goes on while the client is away, then completes.
  for (let i = 100; i < 200; i++) {
    const res = await appendOut(worker, sid, tokens[i], { producer: "w1", seq: i })
    assert.equal(res.status, 200, `append ${i}: ${res.status} ${res.text}`)
  }
  const reply = tokens.map((x) => x.text).join("")
  const done = expectStatus(await worker.post(`/v1/sessions/${sid}/complete`, { content: reply, metadata: { model: "m1" } }), 200)
  assert.equal(done.status, "completed")
  assert.equal(typeof done.result_message_id, "string")

  // The client reconnects: sessions/latest says completed; resuming from its
  // offset gives exactly the rest, and the end of the stream.
  const latest = expectStatus(await alice.get(`/v1/conversations/${conv.id}/sessions/latest`), 200)
  assert.equal(latest.status, "completed")
  assert.equal(latest.result_message_id, done.result_message_id)
  const rest = await alice.get(`/v1/sessions/${sid}/stream?offset=${resumeAt}`)
  assert.equal(rest.status, 200, rest.text)
  assert.deepEqual(rest.json(), tokens.slice(100))
  assert.equal(rest.headers["stream-closed"], "true")
  const sse2 = openSse(srv.port, `/v1/sessions/${sid}/stream?offset=${resumeAt}&live=sse`, auth(alice))
  await sse2.waitFor((s) => s.ended, 10_000, "a resumed SSE read ends at the closed stream")
  assert.deepEqual(sse2.messages(), tokens.slice(100))

  const items = await allMessages(alice, conv.id)
  assert.equal(items.length, 2)
  assert.deepEqual(
    items.map((m) => [m.seq, m.role]),
    [
      [1, "user"],
      [2, "assistant"],
    ],
  )
  assert.equal(items[1].content, reply)
  assert.equal(items[1].session_id, sid)
  assert.equal(items[1].id, done.result_message_id)
  assert.deepEqual(items[1].metadata, { model: "m1" })

  const after = expectStatus(await alice.get(`/v1/conversations/${conv.id}`), 200)
  assert.equal(after.message_count, 2)
  assert.match(after.last_message_at, RFC3339_MS)
  const log = await alice.get(`/v1/conversations/${conv.id}/stream?offset=-1`)
  assert.equal(log.status, 200)
  assert.deepEqual(log.json(), items)

  // Output after the end is refused.
  const late = await appendOut(worker, sid, { type: "delta", text: "late" })
  expectError(late, 409, "invalid_transition")
})

test("chat - retried POSTs with the same Idempotency-Key apply once, also across kill -9", { timeout: 60_000 }, async (t) => {
  const { srv, alice, worker } = await setup(t)
  const sent = []
  async function once(c, method, path, json, key, status) {
    const opts = { json, headers: { "Idempotency-Key": key } }
    const first = await c.call(method, path, opts)
    assert.equal(first.status, status, `${method} ${path}: ${first.status} ${first.text}`)
    const again = await c.call(method, path, opts)
    assert.equal(again.status, status, `retry of ${method} ${path}: ${again.text}`)
    assert.equal(again.headers["idempotent-replayed"], "true", `retry of ${method} ${path} is a replay`)
    assert.equal(again.text, first.text, `retry of ${method} ${path} answers the stored response`)
    sent.push({ c, method, path, opts, first })
    return first.text ? JSON.parse(first.text) : null
  }
  const conv = await once(alice, "POST", "/v1/conversations", { title: "a" }, "conv-1", 201)
  await once(alice, "PATCH", `/v1/conversations/${conv.id}`, { title: "b" }, "patch-1", 200)
  const m1 = await once(alice, "POST", `/v1/conversations/${conv.id}/messages`, { role: "user", content: "hi", process: true }, "msg-1", 201)
  const c1 = await once(worker, "POST", "/v1/sessions/claim", { conversation_id: conv.id }, "claim-1", 200)
  assert.equal(c1.id, m1.session_id)
  await once(worker, "POST", `/v1/sessions/${c1.id}/stream`, { delta: "Hel" }, "out-1", 204)
  await once(worker, "POST", `/v1/sessions/${c1.id}/heartbeat`, { lease_seconds: 120 }, "hb-1", 200)
  await once(worker, "POST", `/v1/sessions/${c1.id}/await`, { request: { tool: "search" } }, "await-1", 200)
  await once(alice, "POST", `/v1/sessions/${c1.id}/input`, { data: { approved: true } }, "input-1", 200)
  await once(worker, "POST", `/v1/sessions/${c1.id}/complete`, { content: "Hello" }, "complete-1", 200)
  const m2 = await once(alice, "POST", `/v1/conversations/${conv.id}/messages`, { role: "user", content: "more", process: true }, "msg-2", 201)
  await once(alice, "POST", `/v1/sessions/${m2.session_id}/cancel`, undefined, "cancel-1", 200)
  const m3 = await once(alice, "POST", `/v1/conversations/${conv.id}/messages`, { role: "user", content: "again", process: true }, "msg-3", 201)
  await once(worker, "POST", `/v1/sessions/${m3.session_id}/fail`, { error: { reason: "model down" } }, "fail-1", 200)
  await once(alice, "POST", "/v1/snapshots", { source: `/v1/conversations/${conv.id}` }, "snap-1", 201)

  // kill -9, then every retry still answers the stored response.
  await srv.kill9()
  await srv.restart()
  for (const s of sent) {
    const res = await s.c.call(s.method, s.path, s.opts)
    assert.equal(res.status, s.first.status, `after kill -9: ${s.method} ${s.path}: ${res.text}`)
    assert.equal(res.headers["idempotent-replayed"], "true", `after kill -9: ${s.method} ${s.path} is a replay`)
    assert.equal(res.text, s.first.text, `after kill -9: ${s.method} ${s.path} answers the stored response`)
  }

  // Nothing happened twice.
  const list = expectStatus(await alice.get("/v1/conversations"), 200)
  assert.equal(list.items.length, 1)
  const items = await allMessages(alice, conv.id)
  assert.deepEqual(
    items.map((m) => [m.seq, m.role, m.content]),
    [
      [1, "user", "hi"],
      [2, "assistant", "Hello"],
      [3, "user", "more"],
      [4, "user", "again"],
    ],
  )
  const out = await alice.get(`/v1/sessions/${c1.id}/stream?offset=-1`)
  assert.deepEqual(out.json(), [{ delta: "Hel" }])
  const sessions = expectStatus(await alice.get(`/v1/conversations/${conv.id}/sessions`), 200)
  assert.deepEqual(
    sessions.items.map((s) => s.status),
    ["failed", "cancelled", "completed"],
  )
  const snaps = expectStatus(await alice.get("/v1/snapshots"), 200)
  assert.equal(snaps.items.length, 1)
  const { events } = await readEvents(alice)
  const count = (type) => events.filter((e) => e.type === type).length
  assert.equal(count("conversation.created"), 1)
  assert.equal(count("conversation.updated"), 1)
  assert.equal(count("message.created"), 4)
  assert.equal(count("snapshot.created"), 1)
  // created, claimed, awaited, answered, completed; created, cancelled; created, failed
  assert.equal(count("session.updated"), 9)
})

test("chat - 64 concurrent senders get seq 1..64 with no gap and no duplicate", { timeout: 60_000 }, async (t) => {
  const { alice } = await setup(t)
  const conv = await newConversation(alice)
  const results = await Promise.all(
    Array.from({ length: 64 }, (_, i) => alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: `m${i}` })),
  )
  for (const r of results) assert.equal(r.status, 201, r.text)
  const answered = results.map((r) => r.json().seq).sort((a, b) => a - b)
  assert.deepEqual(
    answered,
    Array.from({ length: 64 }, (_, i) => i + 1),
  )
  const items = await allMessages(alice, conv.id)
  assert.deepEqual(
    items.map((m) => m.seq),
    Array.from({ length: 64 }, (_, i) => i + 1),
  )
  assert.deepEqual(new Set(items.map((m) => m.content)), new Set(Array.from({ length: 64 }, (_, i) => `m${i}`)))
  // Each answer names the message that holds that seq.
  for (const r of results) {
    const m = r.json()
    assert.equal(items[m.seq - 1].id, m.id)
  }
  const c = expectStatus(await alice.get(`/v1/conversations/${conv.id}`), 200)
  assert.equal(c.message_count, 64)
  assert.equal(c.version, 65)
})

test("chat - three SSE clients on the event feed see the same events in the same order", { timeout: 60_000 }, async (t) => {
  const { srv, alice, worker } = await setup(t)
  const subs = [0, 1, 2].map(() => openSse(srv.port, "/v1/events?offset=-1&live=sse", auth(alice)))
  const conv = await newConversation(alice)
  for (let i = 0; i < 5; i++) await send(alice, conv.id, { role: "user", content: `q${i}`, process: i === 4 })
  const s = await claim(worker, conv.id)
  expectStatus(await worker.post(`/v1/sessions/${s.id}/complete`, { content: "a" }), 200)
  expectStatus(await alice.patch(`/v1/conversations/${conv.id}`, { title: "renamed" }), 200)
  const snap = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  expectStatus(await alice.del(`/v1/snapshots/${snap.id}`), 204)

  const { events } = await readEvents(alice)
  const types = events.map((e) => e.type)
  assert.deepEqual(types, [
    "conversation.created",
    "message.created",
    "message.created",
    "message.created",
    "message.created",
    "message.created",
    "session.updated",
    "session.updated",
    "message.created",
    "session.updated",
    "conversation.updated",
    "snapshot.created",
    "snapshot.deleted",
  ])
  const transitions = events.filter((e) => e.type === "session.updated").map((e) => [e.data.from, e.data.to])
  assert.deepEqual(transitions, [
    [null, "pending"],
    ["pending", "processing"],
    ["processing", "completed"],
  ])
  for (const e of events) {
    assert.match(e.at, RFC3339_MS)
    if (e.type.startsWith("message.") || e.type.startsWith("session.")) assert.equal(e.conversation_id, conv.id)
  }
  for (const [i, sub] of subs.entries()) {
    await sub.waitFor((x) => x.messages().length >= events.length, 10_000, `SSE client ${i}`)
    sub.close()
    assert.deepEqual(sub.messages(), events, `SSE client ${i} saw the feed as it is`)
  }
})

// A fresh session in each state, through the API.
async function sessionIn(state, alice, worker) {
  const conv = await newConversation(alice)
  const m = await send(alice, conv.id, { role: "user", content: "x", process: true })
  const sid = m.session_id
  if (state === "failed") expectStatus(await worker.post(`/v1/sessions/${sid}/fail`, {}), 200)
  if (state === "cancelled") expectStatus(await alice.post(`/v1/sessions/${sid}/cancel`), 200)
  if (["processing", "awaiting_input", "completed"].includes(state)) await claim(worker, conv.id)
  if (state === "awaiting_input") expectStatus(await worker.post(`/v1/sessions/${sid}/await`, { request: { q: 1 } }), 200)
  if (state === "completed") expectStatus(await worker.post(`/v1/sessions/${sid}/complete`, { content: "ok" }), 200)
  assert.equal((await getSession(alice, sid)).status, state)
  return { conv, sid }
}

test("chat - every illegal session transition is 409 with the current session", { timeout: 90_000 }, async (t) => {
  const { alice, worker } = await setup(t)
  const legal = {
    pending: ["claim", "fail", "cancel"],
    processing: ["heartbeat", "append", "await", "complete", "fail", "cancel"],
    awaiting_input: ["input", "fail", "cancel"],
    completed: [],
    failed: [],
    cancelled: [],
  }
  const next = { claim: "processing", heartbeat: "processing", append: "processing", await: "awaiting_input", input: "processing", complete: "completed", fail: "failed", cancel: "cancelled" }
  const actions = ["claim", "heartbeat", "append", "await", "input", "complete", "fail", "cancel"]
  for (const state of Object.keys(legal)) {
    for (const action of actions) {
      const { conv, sid } = await sessionIn(state, alice, worker)
      let res
      if (action === "claim") res = await worker.post("/v1/sessions/claim", { conversation_id: conv.id })
      else if (action === "append") res = await appendOut(worker, sid, { t: 1 })
      else if (action === "input" || action === "cancel") res = await alice.post(`/v1/sessions/${sid}/${action}`, action === "input" ? { data: 1 } : undefined)
      else res = await worker.post(`/v1/sessions/${sid}/${action}`, action === "await" ? { request: 1 } : action === "complete" ? { content: "c" } : {})
      const what = `${action} in ${state}`
      const after = await getSession(alice, sid)
      if (legal[state].includes(action)) {
        assert.ok(res.status === 200 || (action === "append" && res.status === 204), `${what}: ${res.status} ${res.text}`)
        assert.equal(after.status, next[action], what)
      } else if (action === "claim") {
        // Nothing pending in that conversation: nothing to claim.
        assert.equal(res.status, 204, `${what}: ${res.text}`)
        assert.equal(after.status, state, what)
      } else {
        const err = expectError(res, 409, "invalid_transition", what)
        assert.equal(err.details.current.id, sid, what)
        assert.equal(err.details.current.status, state, what)
        assert.equal(after.status, state, `${what} changed nothing`)
      }
    }
  }
  // Worker actions are the admin's; a user gets 403.
  const { sid } = await sessionIn("processing", alice, worker)
  for (const action of ["heartbeat", "complete", "fail", "await"])
    expectError(await alice.post(`/v1/sessions/${sid}/${action}`, action === "complete" ? { content: 1 } : {}), 403, "forbidden", action)
  expectError(await alice.post("/v1/sessions/claim", {}), 403, "forbidden", "claim by a user")
  expectError(await appendOut(alice, sid, { t: 1 }), 403, "forbidden", "append by a user")
})

test("chat - a lease that runs out hands the session on; the last attempt fails it", { timeout: 60_000 }, async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const m = await send(alice, conv.id, { role: "user", content: "x", process: true, max_attempts: 2 })
  assert.equal(m.session.max_attempts, 2)
  const sid = m.session_id
  const first = await claim(worker, conv.id, 1)
  assert.equal(first.attempt, 1)
  assert.equal((await appendOut(worker, sid, { t: "partial" }, { headers: { "Session-Attempt": "1" } })).status, 204)

  const back = await waitUntil(async () => {
    const s = await getSession(alice, sid)
    return s.status === "pending" ? s : null
  }, 8_000, "the lease runs out")
  assert.equal(back.attempt, 2)
  assert.equal(back.lease_expires_at, null)
  const out = await alice.get(`/v1/sessions/${sid}/stream?offset=-1`)
  assert.deepEqual(out.json(), [{ t: "partial" }, { type: "attempt", attempt: 2 }])

  // The first worker is fenced off; another claims attempt 2.
  expectError(await worker.post(`/v1/sessions/${sid}/heartbeat`, { attempt: 1 }), 409, "stale_attempt")
  const second = await claim(worker, conv.id, 1)
  assert.equal(second.id, sid)
  assert.equal(second.attempt, 2)
  expectError(await appendOut(worker, sid, { t: "old" }, { headers: { "Session-Attempt": "1" } }), 409, "stale_attempt")
  expectError(await worker.post(`/v1/sessions/${sid}/complete`, { content: "x", attempt: 1 }), 409, "stale_attempt")

  const failed = await waitUntil(async () => {
    const s = await getSession(alice, sid)
    return s.status === "failed" ? s : null
  }, 8_000, "the last lease runs out")
  assert.equal(failed.error.reason, "lease_expired")
  const head = await alice.head(`/v1/sessions/${sid}/stream`)
  assert.equal(head.headers["stream-closed"], "true")
  const { events } = await readEvents(alice)
  const transitions = events.filter((e) => e.type === "session.updated").map((e) => `${e.data.from}>${e.data.to}`)
  assert.deepEqual(transitions, ["null>pending", "pending>processing", "processing>pending", "pending>processing", "processing>failed"])
})

test("chat - cancel while streaming: the worker is refused, the partial output stays", { timeout: 30_000 }, async (t) => {
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const m = await send(alice, conv.id, { role: "user", content: "long answer please", process: true })
  const sid = m.session_id
  await claim(worker, conv.id)
  for (let i = 0; i < 5; i++) assert.equal((await appendOut(worker, sid, { i }, { producer: "w", seq: i })).status, 200)
  const cancelled = expectStatus(await alice.post(`/v1/sessions/${sid}/cancel`), 200)
  assert.equal(cancelled.status, "cancelled")
  assert.equal(cancelled.lease_expires_at, null)

  const err = expectError(await appendOut(worker, sid, { i: 5 }, { producer: "w", seq: 5 }), 409, "invalid_transition")
  assert.equal(err.details.current.status, "cancelled")
  expectError(await worker.post(`/v1/sessions/${sid}/heartbeat`, {}), 409, "invalid_transition")
  expectError(await worker.post(`/v1/sessions/${sid}/complete`, { content: "x" }), 409, "invalid_transition")
  expectError(await alice.post(`/v1/sessions/${sid}/cancel`), 409, "invalid_transition")

  const out = await alice.get(`/v1/sessions/${sid}/stream?offset=-1`)
  assert.equal(out.status, 200)
  assert.deepEqual(out.json(), [0, 1, 2, 3, 4].map((i) => ({ i })))
  assert.equal(out.headers["stream-closed"], "true")
  assert.equal((await allMessages(alice, conv.id)).length, 1, "no reply was added")
})

test("chat - another user's conversation, session, stream and private snapshot answer 404", { timeout: 30_000 }, async (t) => {
  const { srv, alice, bob, worker, anon } = await setup(t)
  const conv = await newConversation(alice)
  const m = await send(alice, conv.id, { role: "user", content: "secret", process: true })
  const sid = m.session_id
  const snap = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}` }), 201)
  const base = `/v1/conversations/${conv.id}`
  const checks = [
    ["GET", base],
    ["PATCH", base, { title: "mine" }],
    ["DELETE", base],
    ["GET", `${base}/messages`],
    ["POST", `${base}/messages`, { role: "user", content: "hi" }],
    ["GET", `${base}/stream?offset=-1`],
    ["GET", `${base}/sessions`],
    ["GET", `${base}/sessions/latest`],
    ["GET", `/v1/sessions/${sid}`],
    ["GET", `/v1/sessions/${sid}/stream?offset=-1`],
    ["POST", `/v1/sessions/${sid}/cancel`],
    ["POST", `/v1/sessions/${sid}/input`, { data: 1 }],
    ["GET", `/v1/snapshots/${snap.id}`],
    ["DELETE", `/v1/snapshots/${snap.id}`],
    ["POST", "/v1/snapshots", { source: base }],
  ]
  for (const [method, path, json] of checks) expectError(await bob.call(method, path, { json }), 404, "not_found", `bob: ${method} ${path}`)
  // Bob's lists do not show Alice's things.
  assert.deepEqual(expectStatus(await bob.get("/v1/conversations"), 200).items, [])
  assert.deepEqual(expectStatus(await bob.get("/v1/snapshots"), 200).items, [])
  // Without a token: private snapshot 404, everything else 401; a bad token is 401.
  expectError(await anon.get(`/v1/snapshots/${snap.id}`), 404, "not_found")
  expectError(await anon.get(base), 401, "unauthorized")
  expectError(await anon.get("/v1/snapshots"), 401, "unauthorized")
  expectError(await client(srv, "not-a-token").get(`/v1/snapshots/${snap.id}`), 401, "unauthorized")
  // Alice still has it all; the admin reaches it too.
  expectStatus(await alice.get(base), 200)
  expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200)
  expectStatus(await worker.get(`/v1/sessions/${sid}`), 200)
  expectStatus(await worker.get(base), 200)
})

test("chat - snapshots are frozen: new messages and deleting the source change nothing", { timeout: 30_000 }, async (t) => {
  const { srv, alice, bob, anon } = await setup(t)
  const conv = await newConversation(alice, { title: "Recipe" })
  for (let i = 1; i <= 3; i++) await send(alice, conv.id, { role: i % 2 ? "user" : "assistant", content: [{ type: "text", text: `step ${i}` }] })
  const snap = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}`, public: true }), 201)
  assert.deepEqual(Object.keys(snap).sort(), ["created_at", "expires_at", "id", "kind", "public", "source", "title", "url"])
  assert.equal(snap.url, `/v1/snapshots/${snap.id}`)
  assert.equal(snap.title, "Recipe")
  assert.equal(snap.public, true)
  assert.equal(snap.expires_at, null)
  const privateSnap = expectStatus(await alice.post("/v1/snapshots", { source: `/v1/conversations/${conv.id}`, title: "mine" }), 201)

  const first = expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200)
  assert.equal(first.content.conversation.message_count, 3)
  assert.deepEqual(
    first.content.messages.map((m) => m.content[0].text),
    ["step 1", "step 2", "step 3"],
  )

  await send(alice, conv.id, { role: "user", content: "step 4" })
  expectStatus(await alice.patch(`/v1/conversations/${conv.id}`, { title: "Changed" }), 200)
  assert.deepEqual(expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200), first, "unchanged after new messages")

  expectStatus(await alice.del(`/v1/conversations/${conv.id}`), 204)
  expectError(await alice.get(`/v1/conversations/${conv.id}`), 404, "not_found")
  assert.deepEqual(expectStatus(await alice.get(`/v1/snapshots/${snap.id}`), 200), first, "unchanged after the source is deleted")
  const page = expectStatus(await alice.get(`/v1/snapshots/${snap.id}/messages?limit=2`), 200)
  assert.deepEqual(page.items, first.content.messages.slice(0, 2))
  const page2 = expectStatus(await alice.get(`/v1/snapshots/${snap.id}/messages?cursor=${page.next_cursor}`), 200)
  assert.deepEqual(page2.items, first.content.messages.slice(2))
  assert.equal(page2.next_cursor, null)

  // Public: anyone, without a token; private: the owner only. Only the
  // owner sees the visits (view_count, last_viewed_at).
  const shared = { ...first }
  delete shared.view_count
  delete shared.last_viewed_at
  assert.deepEqual(expectStatus(await anon.get(`/v1/snapshots/${snap.id}`), 200), shared)
  assert.deepEqual(expectStatus(await bob.get(`/v1/snapshots/${snap.id}`), 200), shared)
  expectError(await anon.get(`/v1/snapshots/${privateSnap.id}`), 404, "not_found")
  expectStatus(await alice.get(`/v1/snapshots/${privateSnap.id}`), 200)
  expectError(await bob.del(`/v1/snapshots/${snap.id}`), 404, "not_found", "only the owner revokes")

  // It survives a restart, then revoking it makes it 404.
  assert.equal(await srv.stop(), 0)
  await srv.restart()
  assert.deepEqual(expectStatus(await anon.get(`/v1/snapshots/${snap.id}`), 200), shared, "after a restart")
  const listed = expectStatus(await alice.get("/v1/snapshots"), 200)
  assert.deepEqual(
    listed.items.map((s) => s.id),
    [privateSnap.id, snap.id],
  )
  expectStatus(await alice.del(`/v1/snapshots/${snap.id}`), 204)
  expectError(await anon.get(`/v1/snapshots/${snap.id}`), 404, "not_found")
  expectError(await alice.get(`/v1/snapshots/${snap.id}`), 404, "not_found")
  expectStatus(await alice.get(`/v1/snapshots/${privateSnap.id}`), 200)

  // A document snapshot keeps that version; an expired snapshot is 410.
  expectStatus(await alice.put("/v1/documents/prefs/theme", { color: "dark" }), 201)
  const docSnap = expectStatus(await alice.post("/v1/snapshots", { source: "/v1/documents/prefs/theme", expires_in: 1 }), 201)
  assert.equal(docSnap.kind, "document")
  assert.match(docSnap.expires_at, RFC3339_MS)
  expectStatus(await alice.put("/v1/documents/prefs/theme", { color: "light" }), 200)
  const frozenDoc = expectStatus(await alice.get(`/v1/snapshots/${docSnap.id}`), 200)
  assert.deepEqual(frozenDoc.content.document.data, { color: "dark" })
  assert.equal(frozenDoc.content.document.version, 1)
  await sleep(1_100)
  expectError(await alice.get(`/v1/snapshots/${docSnap.id}`), 410, "expired")
  await sleep(1_500) // the maintenance tick frees it; it stays 410
  expectError(await alice.get(`/v1/snapshots/${docSnap.id}`), 410, "expired")

  // Bad sources.
  expectError(await alice.post("/v1/snapshots", { source: "/v1/conversations/nope" }), 404, "not_found")
  expectError(await alice.post("/v1/snapshots", { source: "/v1/stream/x" }), 400, "invalid_snapshot")
  expectError(await alice.post("/v1/snapshots", {}), 400, "invalid_snapshot")
})

test("chat - contents round-trip byte-exact; 413 over the JSON limit; pages are clamped", { timeout: 60_000 }, async (t) => {
  // Over 200 writes as one user in a second or two: more than the default
  // per-user rate limit allows (27-ratelimit tests that limit).
  const { alice } = await setup(t, ["--rate-limit-writes", "off"])
  const conv = await newConversation(alice)
  const unit = "héllo wörld ✓ 😀 \"quoted\" \\ back\n\ttab <tag> & "
  const small = unit.repeat(Math.ceil(10240 / unit.length)).slice(0, 10240)
  const big = unit.repeat(Math.ceil(1048576 / unit.length)).slice(0, 1048576)
  const parts = [{ type: "text", text: small }, { type: "data", values: [0.1, 1e-7, 3.141592653589793, 1234567890123456, -17, true, null] }]
  for (const content of [small, big, parts]) {
    const m = await send(alice, conv.id, { role: "user", content, metadata: { n: 0.1 } })
    assert.deepEqual(m.content, content)
  }
  const items = await allMessages(alice, conv.id)
  assert.equal(items[0].content, small)
  assert.equal(items[1].content, big)
  assert.deepEqual(items[2].content, parts)
  assert.deepEqual(items[2].metadata, { n: 0.1 })
  const raw = (await alice.get(`/v1/conversations/${conv.id}/messages?after=2`)).text
  assert.ok(raw.includes('"values":[0.1,1e-7,3.141592653589793,1234567890123456,-17,true,null]'), raw.slice(0, 400))
  assert.deepEqual(await readStream(alice, `/v1/conversations/${conv.id}/stream`), items)

  // Over 1.5 MiB: 413 with the limit, nothing stored.
  const huge = "x".repeat(1536 * 1024)
  const err = expectError(await alice.post(`/v1/conversations/${conv.id}/messages`, { role: "user", content: huge }), 413, "payload_too_large")
  assert.equal(err.details.limit_bytes, 1536 * 1024)
  assert.equal((await allMessages(alice, conv.id)).length, 3)

  // Bad messages are 400 and store nothing.
  for (const body of [{ role: "robot", content: "x" }, { role: "user" }, { role: "user", content: "x", extra: 1 }, { role: "user", content: "x", metadata: [] }, { role: "user", content: "x", max_attempts: 2 }, [1]]) {
    expectError(await alice.post(`/v1/conversations/${conv.id}/messages`, body), 400, "invalid_message", JSON.stringify(body))
  }
  expectError(await alice.call("POST", `/v1/conversations/${conv.id}/messages`, { body: "{nope", headers: { "Content-Type": "application/json" } }), 400, "invalid_json")
  assert.equal((await allMessages(alice, conv.id)).length, 3)

  // Pages: default 20, limit clamped at 100, cursors to the end.
  for (let i = 0; i < 117; i++) await send(alice, conv.id, { role: "assistant", content: i })
  const d = expectStatus(await alice.get(`/v1/conversations/${conv.id}/messages`), 200)
  assert.equal(d.items.length, 20)
  assert.equal(typeof d.next_cursor, "string")
  const c = expectStatus(await alice.get(`/v1/conversations/${conv.id}/messages?limit=1000`), 200)
  assert.equal(c.items.length, 100)
  const rest = expectStatus(await alice.get(`/v1/conversations/${conv.id}/messages?limit=100&cursor=${c.next_cursor}`), 200)
  assert.equal(rest.items.length, 20)
  assert.equal(rest.next_cursor, null)
  assert.deepEqual(
    [...c.items, ...rest.items].map((m) => m.seq),
    Array.from({ length: 120 }, (_, i) => i + 1),
  )
  const after = expectStatus(await alice.get(`/v1/conversations/${conv.id}/messages?after=118`), 200)
  assert.deepEqual(
    after.items.map((m) => m.seq),
    [119, 120],
  )
  expectError(await alice.get(`/v1/conversations/${conv.id}/messages?limit=0`), 400, "invalid_limit")
  expectError(await alice.get(`/v1/conversations/${conv.id}/messages?limit=abc`), 400, "invalid_limit")
  expectError(await alice.get(`/v1/conversations/${conv.id}/messages?cursor=zz`), 400, "invalid_cursor")

  for (let i = 0; i < 104; i++) await newConversation(alice, { title: `c${i}` })
  const lc = expectStatus(await alice.get("/v1/conversations?limit=500"), 200)
  assert.equal(lc.items.length, 100)
  const lc2 = expectStatus(await alice.get(`/v1/conversations?cursor=${lc.next_cursor}`), 200)
  assert.equal(lc2.items.length, 5)
  assert.equal(lc2.next_cursor, null)
})

test("chat - conversations: most recently active first, merge patch with If-Match, ETags, delete", { timeout: 30_000 }, async (t) => {
  const { alice, worker } = await setup(t)
  const a = await newConversation(alice, { title: "A" })
  const b = await newConversation(alice, { title: "B" })
  const c = await newConversation(alice, {})
  assert.equal(c.title, null)
  assert.deepEqual(c.metadata, {})
  let list = expectStatus(await alice.get("/v1/conversations"), 200)
  assert.deepEqual(
    list.items.map((x) => x.id),
    [c.id, b.id, a.id],
  )
  await send(alice, a.id, { role: "user", content: "bump" })
  list = expectStatus(await alice.get("/v1/conversations"), 200)
  assert.deepEqual(
    list.items.map((x) => x.id),
    [a.id, c.id, b.id],
  )

  // ETag and 304; the version follows every change of the object.
  const got = await alice.get(`/v1/conversations/${a.id}`)
  assert.equal(got.headers.etag, '"2"')
  assert.equal((await alice.get(`/v1/conversations/${a.id}`, { headers: { "If-None-Match": '"2"' } })).status, 304)
  assert.equal((await alice.get(`/v1/conversations/${a.id}`, { headers: { "If-None-Match": '"1"' } })).status, 200)

  // Merge patch on title/metadata; a stale If-Match is 412 with the current one.
  const p1 = await alice.patch(`/v1/conversations/${a.id}`, { metadata: { pinned: true, tags: ["x"] } }, { headers: { "If-Match": '"2"' } })
  const v3 = expectStatus(p1, 200)
  assert.equal(p1.headers.etag, '"3"')
  assert.deepEqual(v3.metadata, { pinned: true, tags: ["x"] })
  assert.equal(v3.title, "A")
  const stale = expectError(await alice.patch(`/v1/conversations/${a.id}`, { title: "Z" }, { headers: { "If-Match": '"2"' } }), 412, "precondition_failed")
  assert.equal(stale.details.current.version, 3)
  const v4 = expectStatus(await alice.patch(`/v1/conversations/${a.id}`, { title: null, metadata: { pinned: null } }), 200)
  assert.equal(v4.title, null)
  assert.deepEqual(v4.metadata, { tags: ["x"] })
  expectError(await alice.patch(`/v1/conversations/${a.id}`, { owner: "bob" }), 400, "invalid_conversation")
  expectError(await alice.patch(`/v1/conversations/${a.id}`, { title: 5 }), 400, "invalid_conversation")
  expectError(await alice.post("/v1/conversations", { metadata: "x" }), 400, "invalid_conversation")

  // Delete removes its messages, sessions and streams for everyone.
  const m = await send(alice, b.id, { role: "user", content: "x", process: true })
  expectError(await alice.del(`/v1/conversations/${b.id}`, { headers: { "If-Match": '"1"' } }), 412, "precondition_failed")
  const del = await alice.del(`/v1/conversations/${b.id}`)
  assert.equal(del.status, 204)
  expectError(await alice.get(`/v1/conversations/${b.id}`), 404, "not_found")
  expectError(await alice.get(`/v1/conversations/${b.id}/messages`), 404, "not_found")
  expectError(await alice.get(`/v1/sessions/${m.session_id}`), 404, "not_found")
  expectError(await worker.get(`/v1/sessions/${m.session_id}`), 404, "not_found")
  expectError(await alice.get(`/v1/sessions/${m.session_id}/stream?offset=-1`), 404, "not_found")
  expectError(await alice.del(`/v1/conversations/${b.id}`), 404, "not_found")
  expectStatus(await worker.post("/v1/sessions/claim", {}), 204, "its pending session is gone")
  list = expectStatus(await alice.get("/v1/conversations"), 200)
  assert.deepEqual(
    list.items.map((x) => x.id),
    [a.id, c.id],
  )
  const { events } = await readEvents(alice)
  assert.ok(events.some((e) => e.type === "conversation.deleted" && e.conversation_id === b.id))

  // Routes and methods.
  const res405 = await alice.call("POST", `/v1/conversations/${a.id}/stream`, { json: { x: 1 } })
  expectError(res405, 405, "method_not_allowed")
  assert.equal(res405.headers.allow, "GET, HEAD")
  assert.equal((await alice.call("PUT", `/v1/conversations/${a.id}`, { json: {} })).headers.allow, "GET, HEAD, PATCH, DELETE")
  assert.equal((await alice.call("DELETE", "/v1/conversations")).headers.allow, "GET, POST")
  assert.equal((await alice.call("GET", "/v1/sessions/claim")).status, 405)
  expectError(await alice.get(`/v1/conversations/${a.id}/nope`), 404, "not_found")
  expectError(await alice.get("/v1/sessions/x/nope"), 404, "not_found")
  expectError(await alice.get("/v1/conversations/no-such-id"), 404, "not_found")
  expectError(await alice.get("/v1/nothing-here"), 404, "not_found")
  expectError(await alice.get(`/v1/conversations/${a.id}/sessions?status=bogus`), 400, "invalid_status")
  expectError(await alice.get(`/v1/conversations/${a.id}/sessions/latest`), 404, "not_found")
})

test("chat - a session's token stream takes appends up to the stream limit, not the JSON limit", { timeout: 30_000 }, async (t) => {
  // The token stream is a Durable Stream: an append may be as large as any
  // stream append (8 MiB by default), while message bodies stop at 1.5 MiB.
  const { alice, worker } = await setup(t)
  const conv = await newConversation(alice)
  const m = await send(alice, conv.id, { role: "user", content: "a long tool result, please", process: true })
  await claim(worker, conv.id)
  const big = { chunk: "y".repeat(2 * 1024 * 1024) }
  const res = await appendOut(worker, m.session_id, big)
  assert.equal(res.status, 204, `a 2 MiB append answered ${res.status}`)
  const over = await appendOut(worker, m.session_id, { chunk: "z".repeat(9 * 1024 * 1024) })
  assert.equal(over.status, 413, `a 9 MiB append answered ${over.status}`)
  const out = await alice.get(`/v1/sessions/${m.session_id}/stream?offset=-1`)
  assert.equal(out.status, 200)
  assert.deepEqual(out.json(), [big])
})
