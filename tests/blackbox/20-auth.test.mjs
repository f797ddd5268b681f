// Authentication and ownership: bearer tokens (the admin key or HS256 user
// JWTs), every rejected token, local mode and its loopback-only rule, and
// what one user can see and touch of another's streams and documents.
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { test } from "node:test"

import { client, describe, expectError, expectStatus, nowSeconds, readEvents, signJwt, userToken } from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import { PARLEY_BIN, startServer } from "./lib/server.mjs"

// Local mode depends on these being unset; the tests set them explicitly.
delete process.env.PARLEY_ADMIN_KEY
delete process.env.PARLEY_JWT_SECRET

const ADMIN_KEY = "test-admin-key-5f1c2a9e"
const SECRET = "test-jwt-secret-0b7d41c3"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]

function startAuthServer(t, extra = []) {
  return startServer({ t, args: [...AUTH_ARGS, ...extra] })
}

/** Assert the 401 shape: code unauthorized, WWW-Authenticate: Bearer. */
function expect401(res, what, messagePattern) {
  const err = expectError(res, 401, "unauthorized", what)
  assert.match(res.headers["www-authenticate"] ?? "", /^Bearer\b/, `${what}: WWW-Authenticate header`)
  assert.deepEqual(err.details, {}, `${what}: error.details`)
  if (messagePattern) assert.match(err.message, messagePattern, `${what}: the message should say which rule failed`)
  return err
}

test("auth - requests without a token get 401 with WWW-Authenticate: Bearer", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const anon = client(srv, null)
  const cases = [
    ["GET", "/v1/documents/notes/a", undefined],
    ["PUT", "/v1/documents/notes/a", { x: 1 }],
    ["PATCH", "/v1/documents/notes/a", { x: 1 }],
    ["DELETE", "/v1/documents/notes/a", undefined],
    ["POST", "/v1/documents/notes", { x: 1 }],
    ["GET", "/v1/documents/notes", undefined],
    ["GET", "/v1/events?offset=-1", undefined],
    ["PUT", "/v1/stream/anon/s", undefined],
    ["POST", "/v1/stream/anon/s", { x: 1 }],
    ["GET", "/v1/stream/anon/s?offset=-1", undefined],
  ]
  for (const [method, p, json] of cases) {
    const res = await anon.call(method, p, { json })
    expect401(res, `${method} ${p} without a token`, /Authorization/i)
  }
  // Other schemes and an empty bearer are refused as well.
  for (const value of ["Basic dXNlcjpwYXNz", "Bearer", "Token " + ADMIN_KEY, ADMIN_KEY]) {
    const res = await request(srv.url, "/v1/documents/notes/a", { headers: { Authorization: value } })
    expect401(res, `Authorization: ${value}`)
  }
  // Nothing was created by the refused writes.
  const admin = client(srv, ADMIN_KEY)
  expectStatus(await admin.head("/v1/stream/anon/s"), 404, "HEAD of the stream a refused PUT named")
})

test("auth - /healthz needs no token", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  for (const headers of [{}, { Authorization: "Bearer not-a-token" }]) {
    const res = await request(srv.url, "/healthz", { headers })
    assert.equal(res.status, 200, describe(res, "GET /healthz"))
  }
})

test("auth - the admin key and a valid HS256 user JWT are accepted", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const created = expectStatus(await alice.put("/v1/documents/notes/n1", { hello: "world" }), 201, "alice PUT")
  assert.equal(created.version, 1)
  expectStatus(await alice.get("/v1/documents/notes/n1"), 200, "alice GET")

  // Only sub is required; exp and nbf are optional, and a token within its
  // window is accepted. The header needs no typ.
  const variants = {
    "sub only": signJwt({ sub: "alice" }, SECRET),
    "nbf in the past, exp in the future": signJwt({ sub: "alice", nbf: nowSeconds() - 600, exp: nowSeconds() + 600 }, SECRET),
    "no typ in the header": signJwt({ sub: "alice" }, SECRET, { header: { alg: "HS256" } }),
    "extra claims": signJwt({ sub: "alice", name: "Alice", roles: ["x"], iss: "app" }, SECRET),
  }
  for (const [what, token] of Object.entries(variants)) {
    const res = await client(srv, token).get("/v1/documents/notes/n1")
    const doc = expectStatus(res, 200, what)
    assert.deepEqual(doc.data, { hello: "world" }, `${what}: the token is alice's`)
  }

  const admin = client(srv, ADMIN_KEY)
  const res = await admin.put("/v1/stream/admin/s", undefined, { headers: { "Content-Type": "text/plain" } })
  expectStatus(res, 201, "admin PUT stream")
  // The admin acts as a user with Parley-User.
  const asAlice = client(srv, ADMIN_KEY, { headers: { "Parley-User": "alice" } })
  const doc = expectStatus(await asAlice.get("/v1/documents/notes/n1"), 200, "admin as alice GET")
  assert.deepEqual(doc.data, { hello: "world" })
})

test("auth - forged, expired, not-yet-valid, alg none, HS512 and sub-less tokens get 401", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  expectStatus(await alice.put("/v1/documents/private/p", { secret: 42 }), 201, "alice PUT")

  const now = nowSeconds()
  const good = userToken("alice", SECRET)
  const [gh, gp, gs] = good.split(".")
  const forgedPayload = Buffer.from(JSON.stringify({ sub: "mallory", exp: now + 3600 })).toString("base64url")
  const flipped = gs.slice(0, -2) + (gs.at(-2) === "A" ? "B" : "A") + gs.at(-1)
  const cases = [
    ["signed with another secret", signJwt({ sub: "alice", exp: now + 3600 }, "not-the-secret"), /signature/i],
    ["signature altered", `${gh}.${gp}.${flipped}`, /signature/i],
    ["payload swapped under a valid signature", `${gh}.${forgedPayload}.${gs}`, /signature/i],
    ["signature removed", `${gh}.${gp}.`, /signature|malformed|algorithm/i],
    ["expired an hour ago", signJwt({ sub: "alice", exp: now - 3600 }, SECRET), /expired/i],
    ["nbf an hour in the future", signJwt({ sub: "alice", nbf: now + 3600 }, SECRET), /not yet valid|nbf/i],
    ["alg none, no signature", signJwt({ sub: "alice" }, null, { alg: "none" }), /alg/i],
    ["alg None, no signature", signJwt({ sub: "alice" }, null, { header: { alg: "None", typ: "JWT" }, alg: "none" }), /alg/i],
    ["alg none with an HS256 signature", signJwt({ sub: "alice" }, SECRET, { header: { alg: "none" }, hashAlg: "sha256" }), /alg/i],
    ["HS512-signed", signJwt({ sub: "alice", exp: now + 3600 }, SECRET, { alg: "HS512" }), /alg/i],
    ["HS384-signed", signJwt({ sub: "alice", exp: now + 3600 }, SECRET, { alg: "HS384" }), /alg/i],
    ["RS256 header", signJwt({ sub: "alice" }, SECRET, { header: { alg: "RS256" }, hashAlg: "sha256" }), /alg/i],
    ["no alg", signJwt({ sub: "alice" }, SECRET, { header: { typ: "JWT" }, hashAlg: "sha256" }), /alg/i],
    ["missing sub", signJwt({ name: "alice", exp: now + 3600 }, SECRET), /sub/i],
    ["empty sub", signJwt({ sub: "", exp: now + 3600 }, SECRET), /sub/i],
    ["numeric sub", signJwt({ sub: 42, exp: now + 3600 }, SECRET), /sub/i],
    ["exp as a string", signJwt({ sub: "alice", exp: String(now + 3600) }, SECRET), /exp/i],
    ["not a JWT", "abc", /malformed|token/i],
    ["two segments", `${gh}.${gp}`, /malformed|token/i],
    ["header not JSON", `${Buffer.from("nope").toString("base64url")}.${gp}.${gs}`, /malformed|token|header/i],
    ["admin key plus a character", ADMIN_KEY + "x", null],
    ["admin key minus a character", ADMIN_KEY.slice(0, -1), null],
  ]
  for (const [what, token, rule] of cases) {
    const c = client(srv, token)
    expect401(await c.get("/v1/documents/private/p"), `GET with a token ${what}`, rule)
    // A refused write changes nothing.
    expect401(await c.put("/v1/documents/private/p", { secret: "overwritten" }), `PUT with a token ${what}`)
    expect401(await c.get("/v1/events?offset=-1"), `GET /v1/events with a token ${what}`)
  }
  const doc = expectStatus(await alice.get("/v1/documents/private/p"), 200, "alice GET after the refused writes")
  assert.equal(doc.version, 1)
  assert.deepEqual(doc.data, { secret: 42 })
  const { events } = await readEvents(alice)
  assert.equal(events.length, 1, `alice's feed holds only her own write: ${JSON.stringify(events)}`)
})

test("auth - the secrets can come from PARLEY_ADMIN_KEY and PARLEY_JWT_SECRET", { timeout: 30_000 }, async (t) => {
  const envKey = "env-admin-key-77aa"
  const envSecret = "env-jwt-secret-91bc"
  process.env.PARLEY_ADMIN_KEY = envKey
  process.env.PARLEY_JWT_SECRET = envSecret
  let srv
  try {
    srv = await startServer({ t })
  } finally {
    delete process.env.PARLEY_ADMIN_KEY
    delete process.env.PARLEY_JWT_SECRET
  }
  expect401(await client(srv, null).get("/v1/documents/c/x"), "no token with secrets from the environment")
  expectStatus(await client(srv, envKey).get("/v1/documents/c/x"), 404, "the admin key from the environment")
  expectStatus(await client(srv, userToken("u1", envSecret)).get("/v1/documents/c/x"), 404, "a JWT signed with the secret from the environment")
  expect401(await client(srv, userToken("u1", SECRET)).get("/v1/documents/c/x"), "a JWT signed with another secret", /signature/i)
})

test("auth - local mode: no token needed, every request is the local user", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  assert.match(srv.stdoutText, /local mode/i, `the start-up line should say local mode: ${srv.stdoutText}`)
  const c = client(srv, null)
  expectStatus(await c.put("/v1/documents/notes/a", { v: 1 }), 201, "PUT without a token")
  expectStatus(await c.get("/v1/documents/notes/a"), 200, "GET without a token")
  expectStatus(await c.put("/v1/stream/local/s", undefined, { headers: { "Content-Type": "text/plain" } }), 201, "PUT stream")
  expectStatus(await c.get("/v1/stream/local/s?offset=-1"), 200, "GET stream")
  const { events } = await readEvents(c)
  assert.deepEqual(
    events.map((e) => [e.type, e.user]),
    [
      ["document.created", "@local"],
      ["stream.created", "@local"],
    ],
  )
})

/**
 * Start `parley serve --listen <addr>` in local mode and expect it to refuse.
 * If it prints a start-up line instead, it is killed at once so that it never
 * serves beyond loopback.
 */
function expectListenRefused(listen) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "parley-blackbox-refuse-"))
  const env = { ...process.env }
  delete env.PARLEY_ADMIN_KEY
  delete env.PARLEY_JWT_SECRET
  const child = spawn(PARLEY_BIN, ["serve", "--listen", listen, "--data", dataDir], { stdio: ["ignore", "pipe", "pipe"], env })
  let stdout = ""
  let stderr = ""
  let listened = false
  child.stdout.setEncoding("utf8").on("data", (d) => {
    stdout += d
    if (/listening/.test(stdout) && !listened) {
      listened = true
      child.kill("SIGKILL")
    }
  })
  child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d))
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
  return new Promise((resolve, reject) => {
    child.once("error", reject)
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      fs.rmSync(dataDir, { recursive: true, force: true })
      resolve({ code, signal, stdout, stderr, listened })
    })
  })
}

test("auth - local mode refuses to listen beyond loopback", { timeout: 30_000 }, async () => {
  for (const listen of ["0.0.0.0:0", "[::]:0"]) {
    const r = await expectListenRefused(listen)
    assert.equal(r.listened, false, `--listen ${listen} in local mode started listening: ${r.stdout}`)
    assert.equal(r.signal, null, `--listen ${listen}: killed by ${r.signal} (it did not exit by itself); stderr: ${r.stderr}`)
    assert.notEqual(r.code, 0, `--listen ${listen}: exit code; stderr: ${r.stderr}`)
    assert.match(r.stderr, /loopback/i, `--listen ${listen}: stderr should explain the loopback rule: ${r.stderr}`)
    assert.match(r.stderr, /--admin-key|--jwt-secret/, `--listen ${listen}: stderr should name the options that lift it: ${r.stderr}`)
  }
})

test("auth - another user's stream answers 404; its path is in use", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const admin = client(srv, ADMIN_KEY)
  const json = { "Content-Type": "application/json" }
  const s = "/v1/stream/shared/chat-1"

  expectStatus(await alice.call("PUT", s, { headers: json }), 201, "alice creates the stream")
  expectStatus(await alice.post(s, { from: "alice", n: 1 }), 204, "alice appends")
  const before = await alice.get(`${s}?offset=-1`)
  expectStatus(before, 200, "alice reads")

  expectError(await bob.get(`${s}?offset=-1`), 404, null, "bob GET")
  expectStatus(await bob.head(s), 404, "bob HEAD")
  expectError(await bob.post(s, { from: "bob" }), 404, null, "bob POST")
  expectError(await bob.call("POST", s, { headers: { "Stream-Closed": "true" } }), 404, null, "bob closes")
  expectError(await bob.del(s), 404, null, "bob DELETE")
  expectError(await bob.get(`${s}?offset=-1&live=long-poll`), 404, null, "bob long-poll")
  expectError(await bob.get(`${s}?offset=-1&live=sse`), 404, null, "bob SSE")
  const put = await bob.call("PUT", s, { headers: json })
  const err = expectError(put, 409, null, "bob PUT on alice's path")
  assert.match(err.message, /in use/i, "the 409 says the path is in use")
  // A user's 404 looks the same as a stream that does not exist.
  const missing = await bob.get("/v1/stream/shared/never-created?offset=-1")
  assert.equal(missing.status, 404)
  assert.equal((await bob.get(`${s}?offset=-1`)).text, missing.text, "a foreign stream is indistinguishable from a missing one")

  // Alice's stream is untouched by all of that.
  const after = await alice.get(`${s}?offset=-1`)
  expectStatus(after, 200, "alice reads again")
  assert.equal(after.text, before.text)
  assert.equal(after.headers["stream-next-offset"], before.headers["stream-next-offset"])
  assert.equal(after.headers["stream-closed"], undefined, "bob's close did not close it")

  // The admin reaches every stream.
  expectStatus(await admin.get(`${s}?offset=-1`), 200, "admin GET")
  expectStatus(await admin.head(s), 200, "admin HEAD")
  expectStatus(await admin.post(s, { from: "admin" }), 204, "admin POST")
  const seen = await alice.get(`${s}?offset=-1`)
  assert.deepEqual(JSON.parse(seen.text), [{ from: "alice", n: 1 }, { from: "admin" }])

  // A stream bob creates is his, and alice cannot see it.
  expectStatus(await bob.call("PUT", "/v1/stream/shared/chat-2", { headers: json }), 201, "bob creates his own")
  expectError(await alice.get("/v1/stream/shared/chat-2?offset=-1"), 404, null, "alice GET bob's stream")

  // Once alice deletes hers, the path is free for anyone.
  expectStatus(await alice.del(s), 204, "alice DELETE")
  expectStatus(await bob.call("PUT", s, { headers: json }), 201, "bob creates the freed path")
  expectError(await alice.get(`${s}?offset=-1`), 404, null, "alice GET of bob's stream on the old path")

  // The admin deletes any stream.
  expectStatus(await admin.del("/v1/stream/shared/chat-2"), 204, "admin DELETE of bob's stream")
  expectError(await bob.get("/v1/stream/shared/chat-2?offset=-1"), 404, null, "bob GET after the admin's delete")
})

test("auth - the admin acting as a user with Parley-User has that user's view of streams", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))
  const asBob = client(srv, ADMIN_KEY, { headers: { "Parley-User": "bob" } })
  const json = { "Content-Type": "application/json" }

  // A stream the admin creates for bob is bob's.
  expectStatus(await asBob.call("PUT", "/v1/stream/as/bob", { headers: json }), 201, "admin as bob creates")
  expectStatus(await bob.get("/v1/stream/as/bob?offset=-1"), 200, "bob reads the stream made for him")
  expectError(await alice.get("/v1/stream/as/bob?offset=-1"), 404, null, "alice GET of bob's stream")

  // Acting as bob, the admin does not reach alice's stream.
  expectStatus(await alice.call("PUT", "/v1/stream/as/alice", { headers: json }), 201, "alice creates")
  expectError(await asBob.get("/v1/stream/as/alice?offset=-1"), 404, null, "admin acting as bob GET alice's stream")
  expectError(await asBob.post("/v1/stream/as/alice", { from: "bob" }), 404, null, "admin acting as bob POST to alice's stream")
})

test("auth - documents live in per-user namespaces", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const alice = client(srv, userToken("alice", SECRET))
  const bob = client(srv, userToken("bob", SECRET))

  // Both users have settings/x, each their own.
  const a = expectStatus(await alice.put("/v1/documents/settings/x", { theme: "dark" }), 201, "alice PUT")
  const b = expectStatus(await bob.put("/v1/documents/settings/x", { theme: "light" }), 201, "bob PUT the same name")
  assert.equal(a.version, 1)
  assert.equal(b.version, 1, "bob's document is a new one, not a new version of alice's")
  assert.deepEqual(expectStatus(await alice.get("/v1/documents/settings/x"), 200).data, { theme: "dark" })
  assert.deepEqual(expectStatus(await bob.get("/v1/documents/settings/x"), 200).data, { theme: "light" })

  // Alice's other documents do not exist for bob, whatever he tries.
  expectStatus(await alice.put("/v1/documents/settings/only-alice", { secret: 1 }), 201)
  const posted = expectStatus(await alice.post("/v1/documents/settings", { made: "by POST" }), 201)
  for (const id of ["only-alice", posted.id]) {
    const p = `/v1/documents/settings/${id}`
    expectError(await bob.get(p), 404, "not_found", `bob GET ${id}`)
    expectStatus(await bob.head(p), 404, `bob HEAD ${id}`)
    expectError(await bob.patch(p, { secret: 2 }), 404, "not_found", `bob PATCH ${id}`)
    expectError(await bob.del(p), 404, "not_found", `bob DELETE ${id}`)
    expectError(await bob.put(p, { secret: 3 }, { headers: { "If-Match": '"1"' } }), 412, "precondition_failed", `bob conditional PUT ${id}`)
  }
  // bob's lists show only his documents.
  const bobList = expectStatus(await bob.get("/v1/documents/settings"), 200)
  assert.deepEqual(
    bobList.items.map((d) => [d.id, d.data]),
    [["x", { theme: "light" }]],
  )
  const aliceList = expectStatus(await alice.get("/v1/documents/settings"), 200)
  assert.equal(aliceList.items.length, 3)
  assert.ok(aliceList.items.every((d) => !("theme" in d.data) || d.data.theme === "dark"))

  // A plain PUT by bob on a name only alice has creates bob's own document.
  expectStatus(await bob.put("/v1/documents/settings/only-alice", { mine: true }), 201, "bob PUT only-alice")
  const still = expectStatus(await alice.get("/v1/documents/settings/only-alice"), 200)
  assert.equal(still.version, 1)
  assert.deepEqual(still.data, { secret: 1 })

  // Bob deletes his settings/x; alice's is still there.
  expectStatus(await bob.del("/v1/documents/settings/x"), 204)
  assert.deepEqual(expectStatus(await alice.get("/v1/documents/settings/x"), 200).data, { theme: "dark" })

  // A user cannot borrow the admin's Parley-User header.
  const spoofer = client(srv, userToken("bob", SECRET), { headers: { "Parley-User": "alice" } })
  const spoof = await spoofer.get(`/v1/documents/settings/${posted.id}`)
  assert.notEqual(spoof.status, 200, `bob with Parley-User: alice must not act as alice: ${spoof.text}`)
  const spoofPut = await spoofer.put("/v1/documents/settings/planted", { by: "bob" })
  if (spoofPut.status === 201) expectError(await alice.get("/v1/documents/settings/planted"), 404, "not_found", "bob planted a document in alice's namespace")

  // The admin reaches each namespace by acting as its user.
  const asAlice = client(srv, ADMIN_KEY, { headers: { "Parley-User": "alice" } })
  assert.deepEqual(expectStatus(await asAlice.get("/v1/documents/settings/x"), 200).data, { theme: "dark" })
  const asBob = client(srv, ADMIN_KEY, { headers: { "Parley-User": "bob" } })
  expectError(await asBob.get("/v1/documents/settings/x"), 404, "not_found", "admin as bob GET the deleted x")
  // An invalid Parley-User is refused.
  expect401(
    await client(srv, ADMIN_KEY, { headers: { "Parley-User": "has space" } }).get("/v1/documents/settings/x"),
    "Parley-User with a space",
    /Parley-User/,
  )
})

test("auth - a user whose sub is 'admin' does not reach what the admin key created", { timeout: 30_000 }, async (t) => {
  const srv = await startAuthServer(t)
  const admin = client(srv, ADMIN_KEY)
  const named = client(srv, userToken("admin", SECRET))
  const json = { "Content-Type": "application/json" }
  expectStatus(await admin.call("PUT", "/v1/stream/ops/internal", { headers: json }), 201, "admin creates a stream")
  expectStatus(await admin.post("/v1/stream/ops/internal", { secret: "ops" }), 204, "admin appends")
  expectStatus(await admin.put("/v1/documents/ops/config", { secret: "config" }), 201, "admin creates a document")

  const get = await named.get("/v1/stream/ops/internal?offset=-1")
  assert.equal(get.status, 404, `a JWT user with sub "admin" read the admin key's stream: ${describe(get)}`)
  const doc = await named.get("/v1/documents/ops/config")
  assert.equal(doc.status, 404, `a JWT user with sub "admin" read the admin key's document: ${describe(doc)}`)
  const del = await named.del("/v1/stream/ops/internal")
  assert.equal(del.status, 404, `a JWT user with sub "admin" deleted the admin key's stream: ${describe(del)}`)
  // Ids starting with '@' are Parley's own principals: no token may claim one.
  expect401(await client(srv, userToken("@admin", SECRET)).get("/v1/documents/ops/config"), "sub @admin", /@/)
  expect401(
    await client(srv, ADMIN_KEY, { headers: { "Parley-User": "@admin" } }).get("/v1/documents/ops/config"),
    "Parley-User @admin",
    /@/,
  )
})
