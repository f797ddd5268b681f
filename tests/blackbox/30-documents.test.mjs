// Documents: versioned JSON under /v1/documents/{collection}/{id} — create,
// replace, conditional writes, merge patch, ETags, delete, server-made ids,
// lists, names, limits and hostile bodies.
import assert from "node:assert/strict"
import http from "node:http"
import { test } from "node:test"

import {
  RFC3339_MS,
  canonicalJson,
  client,
  describe,
  expectError,
  expectStatus,
  listAll,
  sha256Hex,
  userToken,
} from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-docs-1"
const SECRET = "test-jwt-secret-docs-1"
const AUTH_ARGS = ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET]
const MAX_JSON = 1572864 // 1.5 MiB, the default --max-json-bytes

async function setup(t, extra = []) {
  const srv = await startServer({ t, args: [...AUTH_ARGS, ...extra] })
  return { srv, c: client(srv, userToken("alice", SECRET)) }
}

const REP_KEYS = ["checksum", "collection", "created_at", "data", "id", "updated_at", "version"]

/** Check the representation of a document and return it. */
function checkRep(doc, collection, id, what) {
  assert.deepEqual(Object.keys(doc).sort(), REP_KEYS, `${what}: representation fields`)
  assert.equal(doc.collection, collection, `${what}: collection`)
  if (id !== null) assert.equal(doc.id, id, `${what}: id`)
  assert.ok(Number.isInteger(doc.version) && doc.version >= 1, `${what}: version ${doc.version}`)
  assert.match(doc.checksum, /^[0-9a-f]{64}$/, `${what}: checksum`)
  assert.match(doc.created_at, RFC3339_MS, `${what}: created_at`)
  assert.match(doc.updated_at, RFC3339_MS, `${what}: updated_at`)
  assert.ok(doc.updated_at >= doc.created_at, `${what}: updated_at before created_at`)
  assert.equal(doc.checksum, sha256Hex(canonicalJson(doc.data)), `${what}: checksum is the SHA-256 of the canonical data`)
  return doc
}

test("documents - PUT creates (201) and replaces (200); versions go up by one", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const p = "/v1/documents/settings/theme"
  const res1 = await c.put(p, { mode: "dark", size: 12 })
  const d1 = checkRep(expectStatus(res1, 201, "create"), "settings", "theme", "create")
  assert.equal(d1.version, 1)
  assert.deepEqual(d1.data, { mode: "dark", size: 12 })
  assert.equal(res1.headers.etag, '"1"')
  assert.equal(res1.headers.location, p)
  assert.match(res1.headers["content-type"], /^application\/json/)

  let prev = d1
  for (let v = 2; v <= 5; v++) {
    const res = await c.put(p, { mode: v % 2 ? "dark" : "light", size: v })
    const d = checkRep(expectStatus(res, 200, `replace ${v}`), "settings", "theme", `replace ${v}`)
    assert.equal(d.version, v, "one more version per change")
    assert.equal(res.headers.etag, `"${v}"`)
    assert.equal(d.created_at, d1.created_at, "created_at stays")
    assert.ok(d.updated_at >= prev.updated_at)
    assert.deepEqual(d.data, { mode: v % 2 ? "dark" : "light", size: v }, "PUT replaces the whole data")
    prev = d
  }
  const got = await c.get(p)
  assert.deepEqual(checkRep(expectStatus(got, 200, "GET"), "settings", "theme", "GET"), prev)
  assert.equal(got.headers.etag, '"5"')
  // HEAD: the headers of GET, no body.
  const head = await c.head(p)
  assert.equal(head.status, 200)
  assert.equal(head.headers.etag, '"5"')
  assert.equal(head.body.length, 0)
})

test("documents - checksum is the SHA-256 of the canonical JSON", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  // Keys out of order at every level, whitespace in the body.
  const body = '{ "zeta": [3, 1, {"b": true, "a": null}],\n  "alpha": {"y": "two", "x": 1},  "mid": -7 }'
  const res = await c.call("PUT", "/v1/documents/sums/one", { body, headers: { "Content-Type": "application/json" } })
  const d = expectStatus(res, 201)
  const canonical = '{"alpha":{"x":1,"y":"two"},"mid":-7,"zeta":[3,1,{"a":null,"b":true}]}'
  assert.equal(canonicalJson(JSON.parse(body)), canonical)
  assert.equal(d.checksum, sha256Hex(canonical))
  assert.deepEqual(d.data, JSON.parse(body))

  // The same data in another order has the same checksum; other data another.
  const same = expectStatus(await c.put("/v1/documents/sums/two", { mid: -7, alpha: { x: 1, y: "two" }, zeta: [3, 1, { a: null, b: true }] }), 201)
  assert.equal(same.checksum, d.checksum)
  const other = expectStatus(await c.put("/v1/documents/sums/three", { mid: -8 }), 201)
  assert.notEqual(other.checksum, d.checksum)
  assert.equal(other.checksum, sha256Hex('{"mid":-8}'))
  // An empty object and after a patch.
  assert.equal(expectStatus(await c.put("/v1/documents/sums/empty", {}), 201).checksum, sha256Hex("{}"))
  const patched = expectStatus(await c.patch("/v1/documents/sums/one", { zeta: null, beta: [1] }), 200)
  assert.equal(patched.checksum, sha256Hex('{"alpha":{"x":1,"y":"two"},"beta":[1],"mid":-7}'))
})

test("documents - If-None-Match: * creates only", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const p = "/v1/documents/once/a"
  const first = expectStatus(await c.put(p, { v: 1 }, { headers: { "If-None-Match": "*" } }), 201, "create-only on a new id")
  const res = await c.put(p, { v: 2 }, { headers: { "If-None-Match": "*" } })
  const err = expectError(res, 412, "precondition_failed", "create-only on an existing id")
  assert.deepEqual(err.details.current, first, "the 412 carries the current document")
  const now = expectStatus(await c.get(p), 200)
  assert.equal(now.version, 1)
  assert.deepEqual(now.data, { v: 1 })
})

test("documents - a stale If-Match gets 412 with the current document", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const p = "/v1/documents/cond/d"
  expectStatus(await c.put(p, { v: 1 }), 201)
  const v2 = expectStatus(await c.put(p, { v: 2 }, { headers: { "If-Match": '"1"' } }), 200, "If-Match current")
  assert.equal(v2.version, 2)

  for (const [method, send] of [
    ["PUT", () => c.put(p, { v: "stale" }, { headers: { "If-Match": '"1"' } })],
    ["PATCH", () => c.patch(p, { stale: true }, { headers: { "If-Match": '"1"' } })],
    ["DELETE", () => c.del(p, { headers: { "If-Match": '"1"' } })],
  ]) {
    const res = await send()
    const err = expectError(res, 412, "precondition_failed", `stale ${method}`)
    assert.deepEqual(err.details.current, v2, `stale ${method}: details.current is the current document`)
    assert.equal(res.headers.etag, '"2"', `stale ${method}: ETag of the current document`)
  }
  assert.deepEqual(expectStatus(await c.get(p), 200), v2, "no stale write changed it")

  const v3 = expectStatus(await c.patch(p, { w: 3 }, { headers: { "If-Match": '"2"' } }), 200, "PATCH with the current version")
  assert.equal(v3.version, 3)
  assert.deepEqual(v3.data, { v: 2, w: 3 })
  expectStatus(await c.del(p, { headers: { "If-Match": '"3"' } }), 204, "DELETE with the current version")

  // If-Match on a document that does not exist.
  expectError(await c.put("/v1/documents/cond/none", { v: 1 }, { headers: { "If-Match": '"1"' } }), 412, "precondition_failed", "If-Match, missing document")
  expectError(await c.get("/v1/documents/cond/none"), 404, "not_found", "the conditional PUT created nothing")
})

test("documents - conflicting If-Match updates from two clients: exactly one wins", { timeout: 30_000 }, async (t) => {
  const { srv, c } = await setup(t)
  const c2 = client(srv, userToken("alice", SECRET))
  const agents = [new http.Agent({ keepAlive: true }), new http.Agent({ keepAlive: true })]
  t.after(() => agents.forEach((a) => a.destroy()))
  for (let round = 0; round < 10; round++) {
    const p = `/v1/documents/race/r${round}`
    const base = expectStatus(await c.put(p, { owner: "nobody", n: 0 }), 201)
    const ifMatch = { "If-Match": `"${base.version}"` }
    const usePatch = round % 2 === 1
    const send = (cl, who, agent) =>
      usePatch
        ? cl.patch(p, { owner: who }, { headers: ifMatch, agent })
        : cl.put(p, { owner: who, n: 1 }, { headers: ifMatch, agent })
    const [r1, r2] = await Promise.all([send(c, "client-1", agents[0]), send(c2, "client-2", agents[1])])
    const statuses = [r1.status, r2.status].sort()
    assert.deepEqual(statuses, [200, 412], `round ${round}: ${r1.status} ${r1.text} / ${r2.status} ${r2.text}`)
    const [win, lose] = r1.status === 200 ? [r1, r2] : [r2, r1]
    const winner = win.json()
    assert.equal(winner.version, 2)
    const err = expectError(lose, 412, "precondition_failed", `round ${round}: loser`)
    assert.deepEqual(err.details.current, winner, `round ${round}: the loser sees the winner's document`)
    assert.equal(err.details.current.version, winner.version)
    assert.deepEqual(expectStatus(await c.get(p), 200), winner, `round ${round}: the stored document is the winner's`)
  }
})

test("documents - PATCH is an RFC 7386 merge patch", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  // The examples of RFC 7386 appendix A whose target and result are objects.
  const vectors = [
    [{ a: "b" }, { a: "c" }, { a: "c" }],
    [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
    [{ a: "b" }, { a: null }, {}],
    [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
    [{ a: ["b"] }, { a: "c" }, { a: "c" }],
    [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
    [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
    [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    [{ title: "Goodbye!", author: { givenName: "John", familyName: "Doe" }, tags: ["example", "sample"], content: "This will be unchanged" },
      { title: "Hello!", phoneNumber: "+01-123-456-7890", author: { familyName: null }, tags: ["example"] },
      { title: "Hello!", author: { givenName: "John" }, tags: ["example"], content: "This will be unchanged", phoneNumber: "+01-123-456-7890" }],
  ]
  for (const [i, [target, patch, result]] of vectors.entries()) {
    const p = `/v1/documents/merge/v${i}`
    expectStatus(await c.put(p, target), 201)
    const res = await c.patch(p, patch)
    const d = checkRep(expectStatus(res, 200, `vector ${i}`), "merge", `v${i}`, `vector ${i}`)
    assert.deepEqual(d.data, result, `vector ${i}: ${JSON.stringify(target)} + ${JSON.stringify(patch)}`)
    assert.equal(d.version, 2, `vector ${i}: one new version`)
    assert.equal(res.headers.etag, '"2"')
    assert.deepEqual(expectStatus(await c.get(p), 200).data, result, `vector ${i}: stored`)
  }

  const p = "/v1/documents/merge/v0"
  // A patch that is not an object would replace the document with a non-object.
  for (const body of ["[1]", '"text"', "null", "42"])
    expectError(await c.call("PATCH", p, { body, headers: { "Content-Type": "application/merge-patch+json" } }), 400, "invalid_document", `patch ${body}`)
  for (const body of ["{bad", "", "{} {}"])
    expectError(await c.call("PATCH", p, { body, headers: { "Content-Type": "application/merge-patch+json" } }), 400, "invalid_json", `patch ${JSON.stringify(body)}`)
  assert.equal(expectStatus(await c.get(p), 200).version, 2, "refused patches changed nothing")
  expectError(await c.patch("/v1/documents/merge/missing", { a: 1 }), 404, "not_found", "PATCH of a missing document")
  expectError(await c.get("/v1/documents/merge/missing"), 404, "not_found", "PATCH did not create it")
})

test("documents - GET has ETag \"<version>\" and If-None-Match answers 304", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const p = "/v1/documents/cache/a"
  expectStatus(await c.put(p, { v: 1 }), 201)
  const v2 = await c.put(p, { v: 2 })
  expectStatus(v2, 200)
  const get = await c.get(p)
  assert.equal(get.headers.etag, '"2"')
  const notModified = await c.get(p, { headers: { "If-None-Match": '"2"' } })
  assert.equal(notModified.status, 304, `If-None-Match current: ${notModified.status} ${notModified.text}`)
  assert.equal(notModified.body.length, 0)
  assert.equal(notModified.headers.etag, '"2"')
  const stale = await c.get(p, { headers: { "If-None-Match": '"1"' } })
  assert.equal(stale.status, 200, "an old ETag gets the document")
  assert.deepEqual(stale.json().data, { v: 2 })
  expectStatus(await c.patch(p, { v: 3 }), 200)
  const changed = await c.get(p, { headers: { "If-None-Match": '"2"' } })
  assert.equal(changed.status, 200, "after a change the old ETag gets the new document")
  assert.equal(changed.headers.etag, '"3"')
})

test("documents - If-None-Match with a list of ETags answers 304 when one matches", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const p = "/v1/documents/cache/list"
  expectStatus(await c.put(p, { v: 1 }), 201)
  expectStatus(await c.put(p, { v: 2 }), 200)
  // RFC 9110 section 13.1.2: If-None-Match is a list; any match means 304.
  for (const value of ['"7", "2"', '"2", "9"', 'W/"2"']) {
    const res = await c.get(p, { headers: { "If-None-Match": value } })
    assert.equal(res.status, 304, `If-None-Match: ${value}: ${res.status} ${res.text}`)
  }
  const none = await c.get(p, { headers: { "If-None-Match": '"1", "3"' } })
  assert.equal(none.status, 200, "no ETag of the list matches")
})

test("documents - DELETE answers 204, then GET 404", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const p = "/v1/documents/trash/a"
  const v1 = expectStatus(await c.put(p, { v: 1 }), 201)
  expectStatus(await c.put("/v1/documents/trash/b", { v: 1 }), 201)
  const del = await c.del(p)
  assert.equal(del.status, 204, `DELETE: ${del.status} ${del.text}`)
  assert.equal(del.body.length, 0)
  expectError(await c.get(p), 404, "not_found", "GET after DELETE")
  assert.equal((await c.head(p)).status, 404, "HEAD after DELETE")
  expectError(await c.del(p), 404, "not_found", "DELETE again")
  expectError(await c.patch(p, { v: 2 }), 404, "not_found", "PATCH after DELETE")
  assert.deepEqual((await listAll(c, "trash")).map((d) => d.id), ["b"], "the list no longer has it")
  // The id can be used again; its version does not go back, so an ETag of
  // the old document never matches the new one.
  const again = expectStatus(await c.put(p, { v: "again" }, { headers: { "If-None-Match": "*" } }), 201, "re-create")
  assert.ok(again.version > v1.version, `re-created at version ${again.version}, after ${v1.version}`)
  assert.equal((await c.get(p, { headers: { "If-None-Match": `"${v1.version}"` } })).status, 200)
})

test("documents - POST to a collection creates one with a server-made 22-character id", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const ids = new Set()
  for (let i = 0; i < 20; i++) {
    const res = await c.post("/v1/documents/inbox", { n: i })
    const d = checkRep(expectStatus(res, 201, `POST ${i}`), "inbox", null, `POST ${i}`)
    assert.match(d.id, /^[A-Za-z0-9_-]{22}$/, "22 URL-safe characters")
    assert.equal(d.version, 1)
    assert.equal(res.headers.location, `/v1/documents/inbox/${d.id}`)
    assert.equal(res.headers.etag, '"1"')
    ids.add(d.id)
    assert.deepEqual(expectStatus(await c.get(`/v1/documents/inbox/${d.id}`), 200), d)
  }
  assert.equal(ids.size, 20, "every id is new")
  expectError(await c.post("/v1/documents/BAD", { n: 1 }), 400, "invalid_collection", "POST to a bad collection")
  expectError(await c.call("POST", "/v1/documents/inbox", { body: "[1]", headers: { "Content-Type": "application/json" } }), 400, "invalid_document", "POST an array")
  assert.equal((await listAll(c, "inbox")).length, 20)
})

test("documents - the list is newest change first, paged by cursor", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  for (let i = 0; i < 25; i++) expectStatus(await c.put(`/v1/documents/pages/d${String(i).padStart(2, "0")}`, { i }), 201)
  // Change an old one: it moves to the front. Delete another: it leaves.
  expectStatus(await c.patch("/v1/documents/pages/d03", { touched: true }), 200)
  expectStatus(await c.del("/v1/documents/pages/d10"), 204)
  const expected = ["d03"]
  for (let i = 24; i >= 0; i--) if (i !== 3 && i !== 10) expected.push(`d${String(i).padStart(2, "0")}`)

  const first = expectStatus(await c.get("/v1/documents/pages"), 200)
  assert.deepEqual(Object.keys(first).sort(), ["items", "next_cursor"])
  assert.equal(first.items.length, 20, "default page size 20")
  assert.equal(typeof first.next_cursor, "string")
  for (const d of first.items) checkRep(d, "pages", null, "list item")
  const second = expectStatus(await c.get(`/v1/documents/pages?cursor=${encodeURIComponent(first.next_cursor)}`), 200)
  assert.equal(second.next_cursor, null, "the last page")
  assert.deepEqual([...first.items, ...second.items].map((d) => d.id), expected)
  assert.deepEqual(first.items[0].data, { i: 3, touched: true })

  // Smaller pages cover the same list without gaps or repeats.
  const small = await listAll(c, "pages", 7)
  assert.deepEqual(small.map((d) => d.id), expected)
  const one = expectStatus(await c.get("/v1/documents/pages?limit=1"), 200)
  assert.deepEqual(one.items.map((d) => d.id), ["d03"])

  // Changes between pages do not make the reader miss older documents.
  const p1 = expectStatus(await c.get("/v1/documents/pages?limit=5"), 200)
  expectStatus(await c.put("/v1/documents/pages/new", { late: true }), 201)
  const rest = await (async () => {
    const out = []
    let cursor = p1.next_cursor
    while (cursor) {
      const page = expectStatus(await c.get(`/v1/documents/pages?limit=5&cursor=${encodeURIComponent(cursor)}`), 200)
      out.push(...page.items)
      cursor = page.next_cursor
    }
    return out
  })()
  assert.deepEqual([...p1.items, ...rest].map((d) => d.id), expected, "paging after a concurrent insert")

  expectStatus(await c.get("/v1/documents/empty-collection"), 200)
  assert.deepEqual(expectStatus(await c.get("/v1/documents/empty-collection"), 200), { items: [], next_cursor: null })
})

test("documents - limit over 100 is clamped; limit=0 or garbage is 400", { timeout: 30_000 }, async (t) => {
  // 105 writes at once as one user: over the default per-user write burst.
  const { c } = await setup(t, ["--rate-limit-writes", "off"])
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
  t.after(() => agent.destroy())
  const n = 105
  const results = await Promise.all(Array.from({ length: n }, (_, i) => c.put(`/v1/documents/many/m${i}`, { i }, { agent })))
  for (const r of results) expectStatus(r, 201)
  for (const limit of [101, 1000, 99999999]) {
    const page = expectStatus(await c.get(`/v1/documents/many?limit=${limit}`), 200, `limit=${limit}`)
    assert.equal(page.items.length, 100, `limit=${limit} is clamped to 100`)
    assert.equal(typeof page.next_cursor, "string")
    const restPage = expectStatus(await c.get(`/v1/documents/many?limit=${limit}&cursor=${encodeURIComponent(page.next_cursor)}`), 200)
    assert.equal(restPage.items.length, 5)
    assert.equal(restPage.next_cursor, null)
  }
  const hundred = expectStatus(await c.get("/v1/documents/many?limit=100"), 200)
  assert.equal(hundred.items.length, 100)
  for (const limit of ["0", "abc", "-1", "1.5", "", "1e2", "%20"])
    expectError(await c.get(`/v1/documents/many?limit=${limit}`), 400, "invalid_limit", `limit=${limit}`)
  for (const cursor of ["zzz", "not-a-cursor", "%00"]) {
    const res = await c.get(`/v1/documents/many?cursor=${cursor}`)
    expectError(res, 400, null, `cursor=${cursor}`)
  }
})

test("documents - collection and id names are checked", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const goodCollections = ["a", "settings", "a-b_c9", "x".repeat(64), "0"]
  const badCollections = ["Settings", "x".repeat(65), "a.b", "a%20b", "caf%C3%A9", "a+b"]
  const goodIds = ["a", "A-z_09", "x".repeat(128), "0"]
  const badIds = ["x".repeat(129), "a.b", "a%20b", "a%2Fb", "caf%C3%A9", "a~b", "a%00b"]
  for (const col of goodCollections) expectStatus(await c.put(`/v1/documents/${col}/ok`, { col }), 201, `collection ${col}`)
  for (const id of goodIds) expectStatus(await c.put(`/v1/documents/ids/${id}`, { id }), 201, `id ${id}`)
  for (const col of badCollections) {
    expectError(await c.put(`/v1/documents/${col}/ok`, { col }), 400, "invalid_collection", `PUT collection ${col}`)
    expectError(await c.get(`/v1/documents/${col}/ok`), 400, "invalid_collection", `GET collection ${col}`)
    expectError(await c.get(`/v1/documents/${col}`), 400, "invalid_collection", `list collection ${col}`)
    expectError(await c.post(`/v1/documents/${col}`, { col }), 400, "invalid_collection", `POST collection ${col}`)
  }
  for (const id of badIds) {
    expectError(await c.put(`/v1/documents/ids/${id}`, { id }), 400, "invalid_id", `PUT id ${id}`)
    expectError(await c.get(`/v1/documents/ids/${id}`), 400, "invalid_id", `GET id ${id}`)
    expectError(await c.patch(`/v1/documents/ids/${id}`, { id }), 400, "invalid_id", `PATCH id ${id}`)
    expectError(await c.del(`/v1/documents/ids/${id}`), 400, "invalid_id", `DELETE id ${id}`)
  }
  assert.equal((await listAll(c, "ids")).length, goodIds.length)
})

test("documents - the body must be one JSON object", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  const json = { "Content-Type": "application/json" }
  const notObjects = ["[1,2]", "42", '"text"', "null", "true", "[]"]
  const notJson = ["{bad", "", "{} {}", '{"a":1,}', "{'a':1}", '{"a":01}', '{"a":1', "\u00ff", '{"a":NaN}']
  for (const body of notObjects) {
    expectError(await c.call("PUT", "/v1/documents/bodies/x", { body, headers: json }), 400, "invalid_document", `PUT ${body}`)
    expectError(await c.call("POST", "/v1/documents/bodies", { body, headers: json }), 400, "invalid_document", `POST ${body}`)
  }
  for (const body of notJson) {
    expectError(await c.call("PUT", "/v1/documents/bodies/x", { body, headers: json }), 400, "invalid_json", `PUT ${JSON.stringify(body)}`)
    expectError(await c.call("POST", "/v1/documents/bodies", { body, headers: json }), 400, "invalid_json", `POST ${JSON.stringify(body)}`)
  }
  // Bytes that are not UTF-8 inside a string.
  const badUtf8 = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])
  expectError(await c.call("PUT", "/v1/documents/bodies/x", { body: badUtf8, headers: json }), 400, "invalid_json", "invalid UTF-8")
  expectError(await c.get("/v1/documents/bodies/x"), 404, "not_found", "nothing was stored")
  assert.equal((await listAll(c, "bodies")).length, 0, "nothing was created")
  // Unicode is kept as sent.
  const uni = { "ключ": "значение ✓", emoji: "😀", esc: "line\nbreak \"quoted\" \\ \u0001" }
  assert.deepEqual(expectStatus(await c.put("/v1/documents/bodies/uni", uni), 201).data, uni)
  assert.deepEqual(expectStatus(await c.get("/v1/documents/bodies/uni"), 200).data, uni)
})

test("documents - a body over --max-json-bytes is 413 with the limit", { timeout: 30_000 }, async (t) => {
  const { srv, c } = await setup(t)
  const json = { "Content-Type": "application/json" }
  // {"s":"xxx..."}: 8 bytes of framing.
  const exactly = `{"s":"${"x".repeat(MAX_JSON - 8)}"}`
  assert.equal(Buffer.byteLength(exactly), MAX_JSON)
  const over = `{"s":"${"x".repeat(MAX_JSON - 7)}"}`
  expectStatus(await c.call("PUT", "/v1/documents/big/at-limit", { body: exactly, headers: json }), 201, "exactly at the limit")
  for (const [method, p] of [
    ["PUT", "/v1/documents/big/over"],
    ["POST", "/v1/documents/big"],
    ["PATCH", "/v1/documents/big/at-limit"],
  ]) {
    const err = expectError(await c.call(method, p, { body: over, headers: json }), 413, null, `${method} one byte over`)
    assert.equal(err.details.limit_bytes, MAX_JSON, `${method}: error.details.limit_bytes`)
  }
  // Twice the limit: still a clear 413 (or the connection closed), and the
  // server stays up. The body itself is then over its own limit: the
  // content's plus 64 KiB for the envelope around it.
  const twice = `{"s":"${"x".repeat(2 * MAX_JSON)}"}`
  const big = await c.call("PUT", "/v1/documents/big/over", { body: twice, headers: json }).catch((err) => ({ status: 0, err }))
  if (big.status !== 0) assert.equal(expectError(big, 413, null, "twice the limit").details.limit_bytes, MAX_JSON + 65536)
  expectError(await c.get("/v1/documents/big/over"), 404, "not_found", "nothing stored")
  assert.equal((await listAll(c, "big")).length, 1)
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})

test("documents - --max-json-bytes sets the limit", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t, ["--max-json-bytes", "1000"])
  const json = { "Content-Type": "application/json" }
  expectStatus(await c.call("PUT", "/v1/documents/small/a", { body: `{"s":"${"x".repeat(992)}"}`, headers: json }), 201, "1,000 bytes")
  const err = expectError(await c.call("PUT", "/v1/documents/small/b", { body: `{"s":"${"x".repeat(993)}"}`, headers: json }), 413, null, "1,001 bytes")
  assert.equal(err.details.limit_bytes, 1000)
  assert.match(err.message, /1000|1,000/, "the message names the limit")
})

test("documents - a merge patch cannot grow a document past --max-json-bytes", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t, ["--max-json-bytes", "1000"])
  const p = "/v1/documents/grow/a"
  expectStatus(await c.put(p, { a: "x".repeat(900) }), 201)
  const res = await c.patch(p, { b: "y".repeat(900) })
  const err = expectError(res, 413, null, "PATCH whose result is about 1,800 bytes")
  assert.equal(err.details.limit_bytes, 1000)
  const now = expectStatus(await c.get(p), 200)
  assert.equal(now.version, 1, "the document is unchanged")
})

test("documents - 1,000 levels of nesting are refused and the server stays up", { timeout: 30_000 }, async (t) => {
  const { srv, c } = await setup(t)
  const json = { "Content-Type": "application/json" }
  const deepArrays = (n) => `{"a":${"[".repeat(n)}${"]".repeat(n)}}`
  const deepObjects = (n) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`
  for (const [what, body] of [
    ["1,000 nested arrays", deepArrays(999)],
    ["1,000 nested objects", deepObjects(1000)],
    ["100,000 nested arrays", deepArrays(100_000)],
    ["unclosed 100,000 levels", `{"a":${"[".repeat(100_000)}`],
  ]) {
    expectError(await c.call("PUT", "/v1/documents/deep/x", { body, headers: json }), 400, null, `PUT ${what}`)
    expectError(await c.call("POST", "/v1/documents/deep", { body, headers: json }), 400, null, `POST ${what}`)
    assert.equal((await request(srv.url, "/healthz")).status, 200, `the server is up after ${what}`)
  }
  expectStatus(await c.put("/v1/documents/deep/y", { shallow: [[[1]]] }), 201)
  expectError(await c.call("PATCH", "/v1/documents/deep/y", { body: deepObjects(1000), headers: json }), 400, null, "PATCH 1,000 levels")
  // Moderate nesting is fine.
  expectStatus(await c.call("PUT", "/v1/documents/deep/z", { body: deepArrays(30), headers: json }), 201, "30 levels")
  assert.equal((await listAll(c, "deep")).length, 2)
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})

test("documents - acknowledged writes survive kill -9", { timeout: 30_000 }, async (t) => {
  const { srv, c } = await setup(t)
  expectStatus(await c.put("/v1/documents/durable/a", { v: 1 }), 201)
  const v2 = expectStatus(await c.patch("/v1/documents/durable/a", { w: 2 }), 200)
  const posted = expectStatus(await c.post("/v1/documents/durable", { p: 1 }), 201)
  expectStatus(await c.put("/v1/documents/durable/gone", { v: 1 }), 201)
  expectStatus(await c.del("/v1/documents/durable/gone"), 204)
  await srv.kill9()
  await srv.restart()
  assert.deepEqual(expectStatus(await c.get("/v1/documents/durable/a"), 200), v2)
  assert.deepEqual(expectStatus(await c.get(`/v1/documents/durable/${posted.id}`), 200), posted)
  expectError(await c.get("/v1/documents/durable/gone"), 404, "not_found", "the delete survived")
  const v3 = expectStatus(await c.put("/v1/documents/durable/a", { v: 3 }, { headers: { "If-Match": '"2"' } }), 200)
  assert.equal(v3.version, 3, "versions continue after the restart")
})

test("documents - unknown routes are 404 and wrong methods 405 with Allow", { timeout: 30_000 }, async (t) => {
  const { c } = await setup(t)
  for (const p of ["/v1/documents", "/v1/document/a/b", "/v2/documents/a"]) {
    const res = await c.get(p)
    expectError(res, 404, null, `GET ${p}`)
  }
  for (const method of ["POST"]) {
    const res = await c.call(method, "/v1/documents/col/id", { body: "{}", headers: { "Content-Type": "application/json" } })
    expectError(res, 405, "method_not_allowed", `${method} on a document`)
    const allow = (res.headers.allow ?? "").split(/\s*,\s*/)
    for (const m of ["GET", "PUT", "PATCH", "DELETE"]) assert.ok(allow.includes(m), `Allow on a document has ${m}: ${res.headers.allow}`)
  }
  for (const method of ["PUT", "PATCH", "DELETE"]) {
    const res = await c.call(method, "/v1/documents/col", { body: "{}", headers: { "Content-Type": "application/json" } })
    expectError(res, 405, "method_not_allowed", `${method} on a collection`)
    const allow = (res.headers.allow ?? "").split(/\s*,\s*/)
    for (const m of ["GET", "POST"]) assert.ok(allow.includes(m), `Allow on a collection has ${m}: ${res.headers.allow}`)
  }
})

test("documents - nesting: 128 levels are stored and merge-patched, 129 are refused", { timeout: 30_000 }, async (t) => {
  // RELIABILITY.md item 16: every chain a user can make has a documented
  // limit and a test at it. A merge patch recurses once per level.
  const { c } = await setup(t)
  const nested = (levels, leaf) => {
    let v = leaf
    for (let i = 0; i < levels; i++) v = { n: v }
    return v
  }
  expectStatus(await c.put("/v1/documents/deep/ok", nested(128, 1)), 201)
  const patched = expectStatus(await c.patch("/v1/documents/deep/ok", nested(128, 2)), 200)
  let v = patched.data
  for (let i = 0; i < 128; i++) v = v.n
  assert.equal(v, 2, "the patch reached the deepest level")
  const deepPut = await c.put("/v1/documents/deep/no", nested(129, 1))
  assert.equal(deepPut.status, 400, describe(deepPut, "a 129-deep document"))
  const deepPatch = await c.patch("/v1/documents/deep/ok", nested(129, 3))
  assert.equal(deepPatch.status, 400, describe(deepPatch, "a 129-deep patch"))
  const after = expectStatus(await c.get("/v1/documents/deep/ok"), 200)
  assert.equal(after.version, patched.version, "a refused patch changes nothing")
})
