// Webhook signing-key rotation: `parley keys rotate` beside a running
// server (on PostgreSQL, beside two nodes). A webhook receiver checks every
// delivery's Webhook-Signature against the JWK Set it fetches at that
// moment: before the rotation (one key), during the overlap (both keys
// listed, deliveries signed with the new kid), after the overlap (the old
// kid gone). Also `parley keys list`, a restart keeping the rotated key,
// and the command's usage errors.
import assert from "node:assert/strict"
import crypto from "node:crypto"
import http from "node:http"
import { test } from "node:test"

import { client, expectStatus, sleep } from "./lib/api.mjs"
import { append, createStream } from "./lib/http.mjs"
import { TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

for (const name of Object.keys(process.env)) if (name.startsWith("PARLEY_") && !["PARLEY_BIN", "PARLEY_TEST_STORE"].includes(name)) delete process.env[name]

/** A receiver that answers {"done":true} and records each delivery. */
async function receiver(t) {
  const hits = []
  const srv = http.createServer((req, res) => {
    const chunks = []
    req.on("data", (c) => chunks.push(c))
    req.on("end", () => {
      hits.push({ raw: Buffer.concat(chunks), signature: req.headers["webhook-signature"] })
      res.writeHead(200, { "content-type": "application/json" })
      res.end('{"done":true}')
    })
  })
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok))
  t.after(() => new Promise((ok) => { srv.closeAllConnections(); srv.close(ok) }))
  return { url: `http://127.0.0.1:${srv.address().port}/hook`, hits }
}

async function until(what, fn, timeoutMs = 8000) {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    const v = await fn()
    if (v) return v
    await sleep(50)
  }
  assert.fail(`timed out waiting for ${what}`)
}

/** The JWK Set now. */
async function jwks(srv) {
  const res = await client(srv).get("/v1/stream/__ds/jwks.json")
  assert.equal(res.status, 200)
  return res.json().keys
}

/** Verify a delivery as a receiver does: the kid must be in the JWK Set. Returns the kid. */
function verifyDelivery(hit, keys) {
  const m = /^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$/.exec(hit.signature ?? "")
  assert.ok(m, `a Webhook-Signature: ${hit.signature}`)
  const jwk = keys.find((k) => k.kid === m[2])
  assert.ok(jwk, `kid ${m[2]} is in the JWK Set ${keys.map((k) => k.kid)}`)
  const key = crypto.createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: "jwk" })
  const ok = crypto.verify(null, Buffer.concat([Buffer.from(`${m[1]}.`), hit.raw]), key, Buffer.from(m[3], "base64url"))
  assert.ok(ok, `the signature verifies with ${m[2]}`)
  return m[2]
}

/** `parley keys ...` on the server's store. */
function keys(srv, ...args) {
  const where = srv.pgUrl ? ["--store", srv.pgUrl] : ["--data", srv.dataDir]
  return runParley(["keys", ...args, ...where])
}

/** Append to the stream and wait for the delivery it wakes. */
async function deliver(srv, rx, n) {
  assert.equal((await append(srv.url, "jobs/a", `[{"n":${n}}]`, "application/json")).status, 204)
  return until(`delivery ${n}`, () => rx.hits.length >= n && rx.hits[n - 1])
}

test("keys - rotation: both keys in the JWK Set during the overlap, deliveries switch to the new kid, the old kid leaves after the overlap", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const rx = await receiver(t)
  assert.equal((await createStream(srv.url, "jobs/a", "application/json")).status, 201)
  expectStatus(await client(srv).put("/v1/stream/__ds/subscriptions/rot", { type: "webhook", pattern: "jobs/*", webhook: { url: rx.url } }), 201)

  // Before: one key, deliveries signed with it.
  const before = await jwks(srv)
  assert.equal(before.length, 1)
  const oldKid = before[0].kid
  assert.equal(verifyDelivery(await deliver(srv, rx, 1), await jwks(srv)), oldKid)
  let r = await keys(srv, "list")
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, new RegExp(`^${oldKid} +created \\S+ +active: signs deliveries$`, "m"))

  // Rotate with a short overlap, while the server runs.
  r = await keys(srv, "rotate", "--key-overlap", "4s")
  assert.equal(r.code, 0, r.stdout + r.stderr)
  const newKid = /new signing key (ds_\S+):/.exec(r.stdout)[1]
  assert.notEqual(newKid, oldKid)
  const during = await until("the new key in the JWK Set", async () => { const k = await jwks(srv); return k.length === 2 && k })
  assert.deepEqual(during.map((k) => k.kid), [newKid, oldKid], "the active key first, the old one still listed")
  // During the overlap: deliveries use the new kid, and verify against the JWK Set.
  assert.equal(verifyDelivery(await deliver(srv, rx, 2), await jwks(srv)), newKid)
  // A receiver that cached the JWK Set from before can still check an old delivery.
  assert.equal(verifyDelivery(rx.hits[0], during), oldKid)
  r = await keys(srv, "list")
  assert.match(r.stdout, new RegExp(`^${newKid} +created \\S+ +active: signs deliveries\\n${oldKid} +created \\S+ +in the JWK Set until \\S+$`, "m"))

  // After the overlap: the old kid is gone; the new one still signs.
  const after = await until("the old key retired", async () => { const k = await jwks(srv); return k.length === 1 && k }, 10_000)
  assert.deepEqual(after.map((k) => k.kid), [newKid])
  assert.equal(verifyDelivery(await deliver(srv, rx, 3), after), newKid)
  assert.throws(() => verifyDelivery(rx.hits[0], after), /is in the JWK Set/, "an old-key signature no longer verifies")
  r = await keys(srv, "list")
  assert.match(r.stdout, new RegExp(`^${oldKid} +created \\S+ +retired at \\S+$`, "m"))

  // A restart keeps the rotated key.
  await srv.restart()
  assert.deepEqual((await jwks(srv)).map((k) => k.kid), [newKid])
})

test("keys - --key-overlap 0 retires the replaced key at once; PARLEY_KEY_OVERLAP; bad usage is exit 2", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const oldKid = (await jwks(srv))[0].kid
  let r = await keys(srv, "rotate", "--key-overlap", "0")
  assert.equal(r.code, 0, r.stderr)
  const newKid = /new signing key (ds_\S+):/.exec(r.stdout)[1]
  await until("only the new key", async () => { const k = await jwks(srv); return k.length === 1 && k[0].kid === newKid })
  assert.ok(!(await jwks(srv)).some((k) => k.kid === oldKid))

  const where = srv.pgUrl ? ["--store", srv.pgUrl] : ["--data", srv.dataDir]
  r = await runParley(["keys", "rotate", ...where], { env: { PARLEY_KEY_OVERLAP: "1h" } })
  assert.equal(r.code, 0, r.stderr)
  const until1h = /stay in the JWK Set until (\S+)/.exec(r.stdout)[1]
  const ahead = Date.parse(until1h) - Date.now()
  assert.ok(ahead > 3500_000 && ahead <= 3600_000, `an hour ahead: ${until1h}`)

  for (const args of [["rotate", "--key-overlap", "soon"], ["rotate", "--key-overlap", "-1"], ["spin"], [], ["list", "extra"]]) {
    r = await runParley(["keys", ...args, ...(args.length ? where : [])])
    assert.equal(r.code, 2, `keys ${args.join(" ")}: ${r.stdout}${r.stderr}`)
  }
  r = await runParley(["keys", "--help"])
  assert.equal(r.code, 0)
  assert.match(r.stdout, /--key-overlap DURATION/)
  r = await runParley(["keys", "list", "--store", "postgres://u:sekrit@127.0.0.1:1/none"])
  assert.equal(r.code, 2)
  assert.doesNotMatch(r.stderr, /sekrit/)
})

test("keys - on PostgreSQL every node picks up a rotation", { skip: TEST_PG_URL ? false : "needs a private PostgreSQL (tests/lib/with-pg)", timeout: 60_000 }, async (t) => {
  const a = await startServer({ t })
  const b = await startServer({ t, args: ["--store", a.pgUrl] })
  const oldKid = (await jwks(a))[0].kid
  assert.equal((await jwks(b))[0].kid, oldKid, "one key for both nodes")
  const r = await keys(a, "rotate", "--key-overlap", "1h")
  assert.equal(r.code, 0, r.stderr)
  const newKid = /new signing key (ds_\S+):/.exec(r.stdout)[1]
  for (const node of [a, b])
    await until("both keys on each node", async () => (await jwks(node)).map((k) => k.kid).join() === `${newKid},${oldKid}`)
})
