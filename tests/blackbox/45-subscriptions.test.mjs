// Subscriptions (PROTOCOL.md §6-§7) beyond what the conformance suite
// covers: who may manage them when authentication is on, the token-only
// routes, the signing key surviving a restart, webhook retries with their
// "failed" status, and a pull-wake lease that runs out.
import assert from "node:assert/strict"
import http from "node:http"
import { test } from "node:test"

import { client, expectStatus, sleep, userToken } from "./lib/api.mjs"
import { runParley, startServer } from "./lib/server.mjs"

delete process.env.PARLEY_ADMIN_KEY
delete process.env.PARLEY_JWT_SECRET

const ADMIN_KEY = "test-admin-key-7c21d0aa"
const SECRET = "test-jwt-secret-33e8b2f1"

/** A webhook receiver on loopback; answer(req body) → [status, body]. */
async function receiver(t, answer) {
  const hits = []
  const srv = http.createServer((req, res) => {
    const chunks = []
    req.on("data", (c) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      hits.push({ at: Date.now(), body, signature: req.headers["webhook-signature"] })
      const [status, out] = answer(body)
      res.writeHead(status, { "content-type": "application/json" })
      res.end(JSON.stringify(out))
    })
  })
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok))
  t.after(() => new Promise((ok) => { srv.closeAllConnections(); srv.close(ok) }))
  return { url: `http://127.0.0.1:${srv.address().port}/hook`, hits }
}

async function until(what, fn, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await fn()) return
    await sleep(25)
  }
  assert.fail(`timed out waiting for ${what}`)
}

test("subscriptions - management is admin-only when auth is on; token routes and the JWK Set need no credentials", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET] })
  const admin = client(srv, ADMIN_KEY)
  const alice = client(srv, userToken("alice", SECRET))
  const actingAs = client(srv, ADMIN_KEY, { headers: { "Parley-User": "alice" } })
  const anon = client(srv, null)
  const rx = await receiver(t, () => [200, {}])
  const spec = { type: "webhook", pattern: "jobs/*", webhook: { url: rx.url }, lease_ttl_ms: 5000 }

  assert.equal((await anon.put("/v1/stream/__ds/subscriptions/s1", spec)).status, 401, "no token")
  for (const [who, c] of [["a user", alice], ["the admin acting as a user", actingAs]]) {
    const res = await c.put("/v1/stream/__ds/subscriptions/s1", spec)
    assert.equal(res.status, 403, `${who}: ${res.text}`)
    assert.equal(res.json().error.code, "FORBIDDEN")
    assert.equal((await c.get("/v1/stream/__ds/subscriptions/s1")).status, 403)
    assert.equal((await c.post("/v1/stream/__ds/subscriptions/s1/claim", { worker: "w" })).status, 403)
  }
  expectStatus(await admin.put("/v1/stream/__ds/subscriptions/s1", spec), 201, "admin creates")

  const jwks = await anon.get("/v1/stream/__ds/jwks.json")
  assert.equal(jwks.status, 200, "the JWK Set is public")
  assert.match(jwks.headers["content-type"], /^application\/jwk-set\+json/)

  // A user's stream under the pattern wakes the subscription; the receiver
  // calls back with only the wake's token.
  expectStatus(await alice.call("PUT", "/v1/stream/jobs/1", { body: '{"x":1}', headers: { "Content-Type": "application/json" } }), 201)
  await until("the webhook", () => rx.hits.length > 0)
  const wake = rx.hits[0].body
  const acks = wake.streams.map((s) => ({ stream: s.path, offset: s.tail_offset }))
  const cb = await anon.post(new URL(wake.callback_url).pathname, { wake_id: wake.wake_id, generation: wake.generation, acks, done: true }, { headers: { Authorization: `Bearer ${wake.callback_token}` } })
  assert.deepEqual(expectStatus(cb, 200, "callback with the wake token"), { ok: true, next_wake: false })
  const noToken = await anon.post(new URL(wake.callback_url).pathname, { wake_id: wake.wake_id, generation: wake.generation })
  assert.equal(noToken.status, 401)
  assert.equal(noToken.json().error.code, "TOKEN_INVALID")
  // The admin key is not a wake token.
  const adminAsToken = await admin.post(new URL(wake.callback_url).pathname, { wake_id: wake.wake_id, generation: wake.generation })
  assert.equal(adminAsToken.status, 401)
})

test("subscriptions - the signing key and subscriptions survive a restart", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv, null)
  const kid = (await c.get("/v1/stream/__ds/jwks.json")).json().keys[0].kid
  assert.match(kid, /^ds_[A-Za-z0-9_-]{43}$/)
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/keep", { type: "pull-wake", streams: ["a/b"], wake_stream: "wake" }), 201)
  await srv.restart()
  assert.equal((await c.get("/v1/stream/__ds/jwks.json")).json().keys[0].kid, kid, "same kid after a restart")
  const sub = expectStatus(await c.get("/v1/stream/__ds/subscriptions/keep"), 200)
  assert.deepEqual(sub.streams, [{ path: "a/b", link_type: "explicit", acked_offset: "0000000000000000_0000000000000000" }])
})

test("subscriptions - a failing webhook is retried with backoff and reported failed, then delivered", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv, null)
  let up = false
  const rx = await receiver(t, () => (up ? [200, { done: true }] : [503, {}]))
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/r", { type: "webhook", streams: ["r/s"], webhook: { url: rx.url } }), 201)
  expectStatus(await c.call("PUT", "/v1/stream/r/s", { body: "[1,2]", headers: { "Content-Type": "application/json" } }), 201)
  await until("two attempts", () => rx.hits.length >= 2, 5000)
  const gap = rx.hits[1].at - rx.hits[0].at
  assert.ok(gap >= 700 && gap < 2500, `first retry after about 1 s, got ${gap} ms`)
  assert.equal(expectStatus(await c.get("/v1/stream/__ds/subscriptions/r"), 200).status, "failed")
  assert.equal(rx.hits[0].body.wake_id, rx.hits[1].body.wake_id, "a retry is the same wake")
  up = true
  await until("the done delivery", async () => {
    const sub = expectStatus(await c.get("/v1/stream/__ds/subscriptions/r"), 200)
    return sub.status === "active" && sub.streams[0].acked_offset === "0000000000000000_0000000000000002"
  }, 8000)
})

test("subscriptions - --webhook-max-age: a wake that keeps failing is given up, logged and counted; a re-confirming PUT restarts it", { timeout: 40_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--webhook-max-age", "2s"] })
  const c = client(srv, null)
  const givenUp = async () => {
    const res = await c.get("/metrics")
    assert.equal(res.status, 200)
    const m = /^parley_webhook_given_up_total (\S+)$/m.exec(res.text)
    assert.ok(m, `parley_webhook_given_up_total in /metrics:\n${res.text}`)
    return Number(m[1])
  }
  assert.equal(await givenUp(), 0)
  let up = false
  const rx = await receiver(t, () => (up ? [200, { done: true }] : [500, {}]))
  const spec = { type: "webhook", streams: ["g/s"], webhook: { url: rx.url } }
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/g", spec), 201)
  expectStatus(await c.call("PUT", "/v1/stream/g/s", { body: "[1,2]", headers: { "Content-Type": "application/json" } }), 201)
  // POSTs at about 0, 1 and 3 s: the third fails 2 s or more after the wake
  // was issued (on a shared PostgreSQL store the first POST waits for the
  // first maintenance tick, about 1 s: then the second already does).
  await until("the wake given up", async () => (await givenUp()) === 1, 15_000)
  const hits = rx.hits.length
  assert.ok(hits >= 2, `retried before giving up: ${hits} POSTs`)
  assert.match(srv.stderr(), /subscription g wake \d+: given up/)
  assert.equal(expectStatus(await c.get("/v1/stream/__ds/subscriptions/g"), 200).status, "failed")
  // No more POSTs: the next retry would have come about 4 s later. New data
  // does not wake it either (its wake is still in flight).
  expectStatus(await c.call("POST", "/v1/stream/g/s", { body: "[3]", headers: { "Content-Type": "application/json" } }), 204)
  await sleep(5000)
  assert.equal(rx.hits.length, hits, "a given-up wake is not POSTed again")
  assert.equal(expectStatus(await c.get("/v1/stream/__ds/subscriptions/g"), 200).status, "failed")
  assert.equal(await givenUp(), 1, "counted once")

  // The receiver is back; a re-confirming PUT (200) restarts the same wake.
  up = true
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/g", spec), 200)
  await until("the delivery after the restart", async () => {
    const sub = expectStatus(await c.get("/v1/stream/__ds/subscriptions/g"), 200)
    return sub.status === "active" && sub.streams[0].acked_offset === "0000000000000000_0000000000000003"
  }, 8000)
  assert.equal(rx.hits[hits].body.wake_id, rx.hits[0].body.wake_id, "the same wake, restarted")

  // Usage errors.
  for (const v of ["5x", "-1", ""]) {
    const r = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", srv.dataDir, "--webhook-max-age", v])
    assert.equal(r.code, 2, `--webhook-max-age '${v}': ${r.stderr}`)
    assert.match(r.stderr, /--webhook-max-age/)
  }
})

test("subscriptions - a pull-wake lease that runs out fences its worker and wakes again", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv, null)
  expectStatus(await c.call("PUT", "/v1/stream/wake", { body: "[]", headers: { "Content-Type": "application/json" } }), 201)
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/p", { type: "pull-wake", pattern: "in/**", wake_stream: "wake", lease_ttl_ms: 1000 }), 201)
  expectStatus(await c.call("PUT", "/v1/stream/in/a/b", { body: "hello", headers: { "Content-Type": "text/plain" } }), 201)
  const claim = expectStatus(await c.post("/v1/stream/__ds/subscriptions/p/claim", { worker: "slow" }), 200)
  assert.equal(claim.streams[0].path, "in/a/b")
  await sleep(2600) // the lease (1 s) runs out; maintenance runs about once a second
  const late = await c.post("/v1/stream/__ds/subscriptions/p/ack", { wake_id: claim.wake_id, generation: claim.generation, acks: [{ stream: "in/a/b", offset: claim.streams[0].tail_offset }], done: true }, { headers: { Authorization: `Bearer ${claim.token}` } })
  assert.equal(late.status, 409)
  assert.equal(late.json().error.code, "FENCED")
  const events = expectStatus(await c.get("/v1/stream/wake?offset=-1"), 200)
  assert.deepEqual(events.map((e) => [e.type, e.subscription_id, e.stream, e.generation]), [["wake", "p", "in/a/b", 1], ["wake", "p", "in/a/b", 2]])
  const again = expectStatus(await c.post("/v1/stream/__ds/subscriptions/p/claim", { worker: "fast" }), 200)
  assert.equal(again.generation, 2)
  assert.equal(again.streams[0].acked_offset, "0000000000000000_0000000000000000", "nothing was acked by the fenced worker")
})

test("subscriptions - a stream that expires by TTL leaves its subscriptions as a DELETE does; an explicit link restarts when it comes back", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv, null)
  const JSON_CT = { "Content-Type": "application/json" }
  expectStatus(await c.call("PUT", "/v1/stream/wake", { body: "[]", headers: JSON_CT }), 201)
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/x", { type: "pull-wake", pattern: "tmp/*", streams: ["tmp/kept"], wake_stream: "wake" }), 201)
  expectStatus(await c.call("PUT", "/v1/stream/tmp/deleted", { headers: JSON_CT }), 201)
  expectStatus(await c.call("PUT", "/v1/stream/tmp/expired", { headers: { ...JSON_CT, "Stream-TTL": "1" } }), 201)
  expectStatus(await c.call("PUT", "/v1/stream/tmp/kept", { headers: { ...JSON_CT, "Stream-TTL": "1" } }), 201)
  expectStatus(await c.post("/v1/stream/tmp/kept", [1, 2, 3]), 204)
  const links = async () => expectStatus(await c.get("/v1/stream/__ds/subscriptions/x"), 200).streams.map((s) => `${s.path} ${s.link_type} ${s.acked_offset}`).sort()
  const zero = "0000000000000000_0000000000000000"
  assert.deepEqual(await links(), [`tmp/deleted glob ${zero}`, `tmp/expired glob ${zero}`, `tmp/kept explicit ${zero}`])
  // Acknowledge tmp/kept's data, so that its restart shows.
  const claim = expectStatus(await c.post("/v1/stream/__ds/subscriptions/x/claim", { worker: "w" }), 200)
  const kept = claim.streams.find((s) => s.path === "tmp/kept")
  assert.equal(kept.tail_offset, "0000000000000000_0000000000000003")
  expectStatus(await c.post("/v1/stream/__ds/subscriptions/x/ack", { wake_id: claim.wake_id, generation: claim.generation, acks: [{ stream: "tmp/kept", offset: kept.tail_offset }], done: true }, { headers: { Authorization: `Bearer ${claim.token}` } }), 200)
  // A DELETE drops the pattern's link.
  expectStatus(await c.del("/v1/stream/tmp/deleted"), 204)
  assert.deepEqual(await links(), [`tmp/expired glob ${zero}`, `tmp/kept explicit ${kept.tail_offset}`])
  // Expiry (about 1 s, then a maintenance tick) does the same: the pattern's
  // link goes, the explicit one stays.
  await until("the pattern's link to the expired stream to go", async () => !(await links()).some((l) => l.startsWith("tmp/expired ")), 6000)
  assert.equal((await c.get("/v1/stream/tmp/kept")).status, 404, "tmp/kept expired too")
  assert.deepEqual(await links(), [`tmp/kept explicit ${kept.tail_offset}`])
  // The explicit link restarts from the start when the stream comes back.
  expectStatus(await c.call("PUT", "/v1/stream/tmp/kept", { body: "[4]", headers: JSON_CT }), 201)
  assert.deepEqual(await links(), [`tmp/kept explicit ${zero}`])
  const again = expectStatus(await c.post("/v1/stream/__ds/subscriptions/x/claim", { worker: "w" }), 200)
  assert.deepEqual(again.streams.map((s) => [s.path, s.acked_offset, s.tail_offset]), [["tmp/kept", zero, "0000000000000000_0000000000000001"]])
})

test("subscriptions - a wake stream is the admin's: a user's path is neither ensured for the admin nor used for wakes", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET] })
  const admin = client(srv, ADMIN_KEY)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const json = { "Content-Type": "application/json" }
  const putJson = (c, p) => c.call("PUT", `/v1/stream/${p}`, { body: "[]", headers: json })

  // alice takes the well-known path first; the admin's "ensure" is refused,
  // without saying whose the path is.
  expectStatus(await putJson(alice, "wake/pool"), 201, "alice creates wake/pool")
  const ensure = await putJson(admin, "wake/pool")
  assert.equal(ensure.status, 409, `the admin's PUT on alice's path: ${ensure.text}`)
  assert.match(ensure.json().error.message, /in use/)
  assert.doesNotMatch(ensure.text, /alice/, "the 409 does not name the owner")
  expectStatus(await putJson(alice, "wake/pool"), 200, "alice's own PUT stays idempotent")

  // A subscription cannot use it as its wake stream.
  const spec = (wake) => ({ type: "pull-wake", pattern: "jobs/**", wake_stream: wake, lease_ttl_ms: 5000 })
  const refused = await admin.put("/v1/stream/__ds/subscriptions/squatted", spec("wake/pool"))
  assert.equal(refused.status, 409, refused.text)
  assert.equal(refused.json().error.code, "WAKE_STREAM_NOT_ADMIN")
  assert.doesNotMatch(refused.text, /alice/)
  assert.equal((await admin.get("/v1/stream/__ds/subscriptions/squatted")).status, 404, "nothing was created")

  // An admin-owned wake stream: users can neither read nor forge wakes.
  expectStatus(await putJson(admin, "wake/admin"), 201)
  expectStatus(await admin.put("/v1/stream/__ds/subscriptions/jobs", spec("wake/admin")), 201)
  expectStatus(await putJson(bob, "wake/admin"), 409, "bob cannot take the admin's path either")
  assert.equal((await alice.post("/v1/stream/wake/admin", { type: "wake", subscription_id: "jobs", stream: "jobs/forged" })).status, 404, "alice cannot append")
  assert.equal((await alice.get("/v1/stream/wake/admin?offset=-1")).status, 404, "alice cannot read")
  expectStatus(await bob.call("PUT", "/v1/stream/jobs/bob-secret", { body: '{"x":1}', headers: json }), 201)
  const events = expectStatus(await admin.get("/v1/stream/wake/admin?offset=-1"), 200)
  assert.deepEqual(events.map((e) => [e.type, e.stream]), [["wake", "jobs/bob-secret"]])

  // A wake stream that a user creates after the subscription gets no wakes.
  expectStatus(await admin.put("/v1/stream/__ds/subscriptions/later", { ...spec("wake/later"), pattern: "later/**" }), 201)
  expectStatus(await putJson(alice, "wake/later"), 201, "alice takes the wake stream's path")
  expectStatus(await bob.call("PUT", "/v1/stream/later/bob", { body: '{"x":1}', headers: json }), 201)
  const claim = expectStatus(await admin.post("/v1/stream/__ds/subscriptions/later/claim", { worker: "w" }), 200)
  assert.equal(claim.streams[0].path, "later/bob", "the wake happened and can be claimed")
  assert.deepEqual(expectStatus(await alice.get("/v1/stream/wake/later?offset=-1"), 200), [], "alice's stream names none of bob's streams")
  assert.match(srv.stderr(), /wake stream wake\/later/, "the unannounced wake is logged")
})

test("subscriptions - webhook URLs in IPv6 ranges that carry a non-public IPv4 address are refused", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const c = client(srv, null)
  const refused = [
    "2002:a9fe:a9fe::", // 6to4 of 169.254.169.254
    "2002:7f00:1::", // 6to4 of 127.0.0.1
    "64:ff9b:1::a9fe:a9fe", // NAT64 local-use
    "64:ff9b::7f00:1", // NAT64 of 127.0.0.1
    "::ffff:0:169.254.169.254", // SIIT
    "::169.254.169.254", // IPv4-compatible
    "2001:0:4136:e378::5601:5601", // Teredo, client 169.254.169.254
    "2001:0:7f00:1::a247:27dd", // Teredo, server 127.0.0.1
  ]
  for (const [i, addr] of refused.entries()) {
    const res = await c.put(`/v1/stream/__ds/subscriptions/v6-${i}`, { type: "webhook", pattern: "x/*", webhook: { url: `https://[${addr}]/hook` } })
    assert.equal(res.status, 400, `${addr}: ${res.text}`)
    assert.equal(res.json().error.code, "WEBHOOK_URL_REJECTED", addr)
  }
  expectStatus(await c.put("/v1/stream/__ds/subscriptions/v6-ok", { type: "webhook", pattern: "x/*", webhook: { url: "https://[2002:5db8:d822::1]/hook" } }), 201, "6to4 of a public address")
})
