// Rate limits: per-user and per-address token buckets for reads and for
// writes, the 429 with Retry-After and its JSON error, the admin key's
// exemption, live reads counted once, refill after waiting, the defaults
// with authentication and in local mode, and the options' validation.
import assert from "node:assert/strict"
import { test } from "node:test"

import { client, describe, expectError, expectStatus, openSse, sleep, userToken } from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import { runParley, startServer } from "./lib/server.mjs"

delete process.env.PARLEY_ADMIN_KEY
delete process.env.PARLEY_JWT_SECRET
for (const name of Object.keys(process.env)) if (name.startsWith("PARLEY_RATE_")) delete process.env[name]

const ADMIN_KEY = "test-admin-key-7d0e91b4"
const SECRET = "test-jwt-secret-c2a86f15"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]

function startAuthServer(t, extra = [], env) {
  return startServer({ t, args: [...AUTH_ARGS, ...extra], env, defaultRateLimits: true })
}

const users = (srv) => ({
  admin: client(srv, ADMIN_KEY),
  alice: client(srv, userToken("alice", SECRET)),
  bob: client(srv, userToken("bob", SECRET)),
  carol: client(srv, userToken("carol", SECRET)),
})

/**
 * Assert a 429: Retry-After in whole seconds within [1, maxRetry], the error
 * rate_limited whose details say the same retry_after, the limit, the
 * scope and the kind. Returns the details.
 */
function expect429(res, what, { scope, kind, limit, maxRetry = 3600 }) {
  const err = expectError(res, 429, "rate_limited", what)
  const header = res.headers["retry-after"]
  assert.match(header ?? "", /^[1-9][0-9]*$/, `${what}: Retry-After is whole seconds: ${header}`)
  const retry = Number(header)
  assert.ok(retry <= maxRetry, `${what}: Retry-After ${retry} over ${maxRetry}`)
  assert.equal(err.details.retry_after, retry, `${what}: details.retry_after matches Retry-After`)
  assert.equal(err.details.scope, scope, `${what}: details.scope`)
  assert.equal(err.details.kind, kind, `${what}: details.kind`)
  if (limit !== undefined) assert.equal(err.details.limit, limit, `${what}: details.limit`)
  assert.match(err.message, /retry after/i, `${what}: the message says when to retry`)
  return err.details
}

/** Send n requests one after another; resolve their statuses. */
async function statuses(n, send) {
  const out = []
  for (let i = 0; i < n; i++) out.push((await send(i)).status)
  return out
}

test("ratelimit - writes over a user's limit get 429 with Retry-After and the JSON error", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-writes", "3/m"])
  const { alice } = users(srv)
  const ok = await statuses(3, (i) => alice.put(`/v1/documents/notes/n${i}`, { i }))
  assert.deepEqual(ok, [201, 201, 201], "the first three writes of the minute")
  const res = await alice.put("/v1/documents/notes/n3", { i: 3 })
  const d = expect429(res, "the fourth write", { scope: "user", kind: "writes", limit: 3, maxRetry: 20 })
  assert.equal(d.period_seconds, 60)
  assert.equal(d.burst, 3)
  // The refused write changed nothing.
  expectError(await alice.get("/v1/documents/notes/n3"), 404, "not_found", "the refused document")
  // Every write method counts; a stream append gets the same 429.
  expect429(await alice.del("/v1/documents/notes/n0"), "DELETE", { scope: "user", kind: "writes" })
  expect429(await alice.call("PUT", "/v1/stream/rl/a"), "stream PUT", { scope: "user", kind: "writes" })
  expect429(await alice.post("/v1/conversations", {}), "POST", { scope: "user", kind: "writes" })
})

test("ratelimit - reads and writes have separate buckets", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-writes", "2/m", "--rate-limit-reads", "4/m"])
  const { alice } = users(srv)
  assert.deepEqual(await statuses(2, (i) => alice.put(`/v1/documents/notes/w${i}`, { i })), [201, 201])
  expect429(await alice.put("/v1/documents/notes/w2", {}), "third write", { scope: "user", kind: "writes" })
  // Writes are spent; reads are not.
  assert.deepEqual(await statuses(4, () => alice.get("/v1/documents/notes/w0")), [200, 200, 200, 200])
  expect429(await alice.get("/v1/documents/notes/w0"), "fifth read", { scope: "user", kind: "reads", limit: 4 })
  // HEAD is a read: refused too, with Retry-After and no body.
  const head = await alice.head("/v1/documents/notes/w0")
  assert.equal(head.status, 429, describe(head, "HEAD"))
  assert.match(head.headers["retry-after"] ?? "", /^[1-9][0-9]*$/)
})

test("ratelimit - two users never share a bucket", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-writes", "2/m"])
  const { alice, bob, admin } = users(srv)
  assert.deepEqual(await statuses(3, (i) => alice.put(`/v1/documents/a/d${i}`, {})), [201, 201, 429])
  assert.deepEqual(await statuses(3, (i) => bob.put(`/v1/documents/b/d${i}`, {})), [201, 201, 429])
  // The admin key acting for a user counts as that user.
  const asCarol = client(srv, ADMIN_KEY, { headers: { "Parley-User": "carol" } })
  assert.deepEqual(await statuses(3, (i) => asCarol.put(`/v1/documents/c/d${i}`, {})), [201, 201, 429])
  // The admin key's own principal is exempt from per-user limits.
  const own = await statuses(10, (i) => admin.put(`/v1/documents/admin/d${i}`, {}))
  assert.deepEqual(own, Array(10).fill(201), "admin writes")
})

test("ratelimit - --rate-limit-admin all limits the admin key as user @admin", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-writes", "2/m", "--rate-limit-admin", "all"])
  const { admin } = users(srv)
  const got = await statuses(3, (i) => admin.put(`/v1/documents/admin/d${i}`, {}))
  assert.deepEqual(got, [201, 201, 429])
})

test("ratelimit - a per-address limit counts every user from one address", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-addr-writes", "5/m", "--rate-limit-writes", "off"])
  const { alice, bob, carol, admin } = users(srv)
  assert.deepEqual(await statuses(2, (i) => alice.put(`/v1/documents/a/d${i}`, {})), [201, 201])
  assert.deepEqual(await statuses(2, (i) => bob.put(`/v1/documents/b/d${i}`, {})), [201, 201])
  assert.deepEqual(await statuses(1, (i) => carol.put(`/v1/documents/c/d${i}`, {})), [201])
  expect429(await carol.put("/v1/documents/c/x", {}), "sixth write from the address", {
    scope: "address",
    kind: "writes",
    limit: 5,
  })
  // By default the admin key meets per-address limits too.
  expect429(await admin.put("/v1/documents/admin/x", {}), "the admin from the same address", {
    scope: "address",
    kind: "writes",
  })
  // Reads from the address have their own bucket (and are not limited here).
  expectStatus(await alice.get("/v1/documents/a/d0"), 200, "a read")
  // Probes are never limited.
  expectStatus(await request(srv.url, "/healthz"), 200, "healthz")
})

test("ratelimit - --rate-limit-admin none exempts the admin key from per-address limits", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-addr-reads", "2/m", "--rate-limit-admin", "none"])
  const { alice, admin } = users(srv)
  assert.deepEqual(await statuses(8, () => admin.get("/v1/documents/x")), Array(8).fill(200))
  assert.deepEqual(await statuses(3, () => alice.get("/v1/documents/x")), [200, 200, 429])
})

test("ratelimit - after waiting Retry-After, requests succeed again", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-writes", "2/s", "--rate-burst-writes", "2"])
  const { alice } = users(srv)
  const create = await alice.call("PUT", "/v1/stream/rl/wait", { headers: { "Content-Type": "text/plain" } })
  expectStatus(create, 201, "create")
  const append = (i) => alice.call("POST", "/v1/stream/rl/wait", { body: `x${i}`, headers: { "Content-Type": "text/plain" } })
  let refused
  for (let i = 0; i < 10 && !refused; i++) {
    const res = await append(i)
    if (res.status === 429) refused = res
    else assert.equal(res.status, 204, describe(res, `append ${i}`))
  }
  assert.ok(refused, "an append is refused within ten")
  expect429(refused, "the refused append", { scope: "user", kind: "writes", limit: 2, maxRetry: 1 })
  await sleep(Number(refused.headers["retry-after"]) * 1000 + 50)
  expectStatus(await append(99), 204, "the append after Retry-After")
})

test("ratelimit - a live read counts once, however much it delivers", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-reads", "3/m"])
  const { alice, admin } = users(srv)
  expectStatus(await alice.call("PUT", "/v1/stream/rl/live", { headers: { "Content-Type": "text/plain" } }), 201)
  const sse = openSse(srv.port, "/v1/stream/rl/live?offset=-1&live=sse", { Authorization: `Bearer ${alice.token}` })
  t.after(() => sse.close())
  for (let i = 0; i < 20; i++) {
    const res = await admin.call("POST", "/v1/stream/rl/live", { body: `m${i}`, headers: { "Content-Type": "text/plain" } })
    expectStatus(res, 204, `admin append ${i}`)
  }
  await sse.waitFor((s) => s.events.filter((e) => e.type === "data").map((e) => e.data).join("").includes("m19"), 10_000, "all appends over SSE")
  assert.equal(sse.status, 200)
  // A long-poll that is woken by an append is one read too.
  const poll = alice.get("/v1/stream/rl/live?offset=now&live=long-poll", { timeoutMs: 10_000 })
  await sleep(200)
  expectStatus(await admin.call("POST", "/v1/stream/rl/live", { body: "wake", headers: { "Content-Type": "text/plain" } }), 204)
  assert.equal((await poll).status, 200, "the long-poll")
  // The SSE connection and the long-poll took two of three tokens.
  assert.deepEqual(await statuses(2, () => alice.head("/v1/stream/rl/live")), [200, 429])
})

test("ratelimit - with authentication, per-user write limits are on by default", { timeout: 60_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const { alice, admin } = users(srv)
  // 200 writes at once: over the default burst of 100 whatever the refill.
  const res = await Promise.all(Array.from({ length: 200 }, (_, i) => alice.put(`/v1/documents/burst/d${i}`, {})))
  const count = (s) => res.filter((r) => r.status === s).length
  assert.equal(count(201) + count(429), 200, `only 201 and 429: ${res.map((r) => r.status)}`)
  assert.ok(count(201) >= 100, `at least the burst succeeds: ${count(201)}`)
  assert.ok(count(429) > 0, "some are refused")
  expect429(res.find((r) => r.status === 429), "a refused write", { scope: "user", kind: "writes", limit: 50 })
  // The admin key is not limited per user.
  const adminRes = await Promise.all(Array.from({ length: 150 }, (_, i) => admin.put(`/v1/documents/adm/d${i}`, {})))
  assert.equal(adminRes.filter((r) => r.status === 201).length, 150)
})

test("ratelimit - local mode has no limit by default, and takes one when set", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t, defaultRateLimits: true })
  const local = client(srv, null)
  const res = await Promise.all(Array.from({ length: 150 }, (_, i) => local.put(`/v1/documents/local/d${i}`, {})))
  assert.deepEqual([...new Set(res.map((r) => r.status))], [201], "150 writes at once in local mode")
  const reads = await Promise.all(Array.from({ length: 450 }, () => local.get("/v1/documents/local/d0")))
  assert.deepEqual([...new Set(reads.map((r) => r.status))], [200], "450 reads at once in local mode")

  // From the environment, in local mode: the local user is limited.
  const limited = await startServer({ t, env: { PARLEY_RATE_LIMIT_WRITES: "2/m" }, defaultRateLimits: true })
  const lc = client(limited, null)
  assert.deepEqual(await statuses(3, (i) => lc.put(`/v1/documents/l/d${i}`, {})), [201, 201, 429])
})

test("ratelimit - a flag wins over its environment variable; bad values are refused", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t, ["--rate-limit-writes", "off"], { PARLEY_RATE_LIMIT_WRITES: "1/m" })
  const { alice } = users(srv)
  assert.deepEqual(await statuses(5, (i) => alice.put(`/v1/documents/f/d${i}`, {})), Array(5).fill(201))

  for (const args of [
    ["--rate-limit-writes", "fast"],
    ["--rate-limit-writes", "5/d"],
    ["--rate-limit-reads", "-1/s"],
    ["--rate-burst-writes", "0"],
    ["--rate-burst-addr-reads", "2000000"],
    ["--rate-limit-admin", "some"],
  ]) {
    const r = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", "/nonexistent-rl", ...args])
    assert.equal(r.code, 2, `${args.join(" ")}: exit code 2, stderr ${r.stderr}`)
    assert.match(r.stderr, new RegExp(`invalid value .* for --${args[0].slice(2)}`), args.join(" "))
  }
  const env = await runParley(["serve", "--help"])
  assert.match(env.stdout, /--rate-limit-addr-writes/)
})
