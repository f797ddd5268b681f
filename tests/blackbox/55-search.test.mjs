// Search: GET /v1/search?q= over the caller's conversation titles and
// message texts — the query language (words AND-ed, word* prefixes,
// "phrases"), tokenizing (case, accents, punctuation), message parts,
// ranking and paging, the index updated with the message, deleted
// conversations, other users' data, and hostile queries (always a 400
// with a JSON error, never a 500). Runs on SQLite and, under
// tests/lib/with-pg, on PostgreSQL.
import assert from "node:assert/strict"
import { test } from "node:test"

import { client, expectError, expectStatus, userToken } from "./lib/api.mjs"
import { startServer } from "./lib/server.mjs"

const ADMIN_KEY = "test-admin-key-search-1"
const SECRET = "test-jwt-secret-search-1"

async function setup(t) {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY, "--jwt-secret", SECRET] })
  return {
    srv,
    alice: client(srv, userToken("alice", SECRET)),
    bob: client(srv, userToken("bob", SECRET)),
    admin: client(srv, ADMIN_KEY),
  }
}

async function conv(c, title, messages = []) {
  const cv = expectStatus(await c.post("/v1/conversations", { title }), 201)
  const ids = []
  for (const content of messages) ids.push(expectStatus(await c.post(`/v1/conversations/${cv.id}/messages`, { role: "user", content }), 201).id)
  return { ...cv, messageIds: ids }
}

const q = (s) => `/v1/search?q=${encodeURIComponent(s)}`
async function search(c, s, extra = "") {
  return expectStatus(await c.get(q(s) + extra), 200, `search ${JSON.stringify(s)}`)
}
const where = (page) => page.items.map((h) => (h.kind === "title" ? `${h.conversation_id}:title` : `${h.conversation_id}:${h.seq}`)).sort()

test("search - words, prefixes and phrases find titles and messages; each hit names its conversation, message, snippet and rank", async (t) => {
  const { alice } = await setup(t)
  const a = await conv(alice, "Trip to Lisbon", ["Book the hotel near the river", "What about the tram?"])
  const b = await conv(alice, "Groceries", ["milk, eggs and bread", "the hotel bill is paid"])

  const hotel = await search(alice, "hotel")
  assert.deepEqual(where(hotel), [`${a.id}:1`, `${b.id}:2`].sort())
  for (const h of hotel.items) {
    assert.equal(h.kind, "message")
    assert.equal(typeof h.message_id, "string")
    assert.ok([a.messageIds[0], b.messageIds[1]].includes(h.message_id), "the message id of the hit")
    assert.match(h.snippet, /\[hotel\]/i, "the match is marked in the snippet")
    assert.equal(typeof h.rank, "number")
  }
  assert.equal(hotel.next_cursor, null)

  // Words are AND-ed.
  assert.deepEqual(where(await search(alice, "hotel river")), [`${a.id}:1`])
  // A title hit.
  const lis = await search(alice, "lisbon")
  assert.deepEqual(lis.items.map((h) => [h.conversation_id, h.kind, h.message_id, h.seq]), [[a.id, "title", null, null]])
  // A prefix.
  assert.deepEqual(where(await search(alice, "gro*")), [`${b.id}:title`])
  assert.deepEqual(where(await search(alice, "riv*")), [`${a.id}:1`])
  // A phrase: adjacent and in order.
  assert.deepEqual(where(await search(alice, '"the hotel bill"')), [`${b.id}:2`])
  assert.equal((await search(alice, '"hotel the bill"')).items.length, 0)
  // Case and punctuation do not matter; a prefix inside a phrase.
  assert.deepEqual(where(await search(alice, "TRAM?")), [`${a.id}:2`])
  assert.deepEqual(where(await search(alice, '"eggs and bre"*')), [`${b.id}:1`])
  // Nothing found is an empty page.
  assert.deepEqual(await search(alice, "volcano"), { items: [], next_cursor: null })
})

test("search - tokenizing: accents, hyphens, e-mail addresses and digits split into words the same on both backends", async (t) => {
  const { alice } = await setup(t)
  const c = await conv(alice, "Notes", ["Le café crème était très bon", "write to ana.silva@example.com about the e-mail", "order 66 ships in 2026"])
  assert.deepEqual(where(await search(alice, "cafe")), [`${c.id}:1`], "accents are ignored")
  assert.deepEqual(where(await search(alice, "CAFÉ CRÈME")), [`${c.id}:1`])
  assert.deepEqual(where(await search(alice, "example")), [`${c.id}:2`], "an address splits at its punctuation")
  assert.deepEqual(where(await search(alice, "ana.silva@example.com")), [`${c.id}:2`])
  assert.deepEqual(where(await search(alice, "mail")), [`${c.id}:2`], "a hyphenated word is two words")
  assert.deepEqual(where(await search(alice, "e-mail")), [`${c.id}:2`])
  assert.deepEqual(where(await search(alice, "2026")), [`${c.id}:3`])
  assert.deepEqual(where(await search(alice, "20*")), [`${c.id}:3`])
})

test("search - a list of parts is indexed by its text parts only; other content is not searchable", async (t) => {
  const { alice } = await setup(t)
  const c = await conv(alice, null, [
    [{ type: "text", text: "first part about penguins" }, { type: "image", url: "https://x.test/zebra.png" }, "plain string part walrus"],
    { type: "text", text: "an object content is not a list" },
    [{ type: "tool-call", args: { query: "giraffe" } }],
  ])
  assert.deepEqual(where(await search(alice, "penguins")), [`${c.id}:1`])
  assert.deepEqual(where(await search(alice, "walrus")), [`${c.id}:1`])
  assert.equal((await search(alice, "zebra")).items.length, 0, "a part's other fields are not text")
  assert.equal((await search(alice, "object")).items.length, 0)
  assert.equal((await search(alice, "giraffe")).items.length, 0)
})

test("search - another user's titles and messages never appear; the admin key searches as Parley-User", async (t) => {
  const { alice, bob, admin } = await setup(t)
  const a = await conv(alice, "secret plans", ["the password is swordfish"])
  await conv(bob, "bob's own", ["nothing here"])
  assert.equal((await search(bob, "swordfish")).items.length, 0)
  assert.equal((await search(bob, "secret")).items.length, 0)
  assert.equal((await search(bob, "sw*")).items.length, 0)
  assert.equal((await search(bob, "pass*")).items.length, 0)
  assert.equal((await search(admin, "swordfish")).items.length, 0, "the admin's own data is @admin's")
  assert.equal((await search(alice, "swordfish")).items.length, 1)
  const res = await admin.get(q("swordfish"), { headers: { "Parley-User": "alice" } })
  assert.deepEqual(where(expectStatus(res, 200)), [`${a.id}:1`])
})

test("search - the index changes with the data: new messages at once, renamed titles, deleted conversations drop out", async (t) => {
  const { alice } = await setup(t)
  const c = await conv(alice, "Old name", ["alpha"])
  assert.equal((await search(alice, "beta")).items.length, 0)
  expectStatus(await alice.post(`/v1/conversations/${c.id}/messages`, { role: "assistant", content: "beta answer" }), 201)
  assert.deepEqual(where(await search(alice, "beta")), [`${c.id}:2`], "searchable as soon as the POST answered")
  expectStatus(await alice.patch(`/v1/conversations/${c.id}`, { title: "New name" }), 200)
  assert.equal((await search(alice, "old")).items.length, 0, "the old title is gone")
  assert.deepEqual(where(await search(alice, "new name")), [`${c.id}:title`])
  expectStatus(await alice.patch(`/v1/conversations/${c.id}`, { title: null }), 200)
  assert.equal((await search(alice, "name")).items.length, 0, "a removed title is gone")
  expectStatus(await alice.del(`/v1/conversations/${c.id}`), 204)
  for (const w of ["alpha", "beta"]) assert.equal((await search(alice, w)).items.length, 0, `${w}: a deleted conversation drops out`)
})

test("search - messages posted at once (many in one commit) are each found as soon as their POST answers; a conversation deleted meanwhile leaves no hit", async (t) => {
  const { alice } = await setup(t)
  const convs = []
  for (let i = 0; i < 8; i++) convs.push(await conv(alice, `Batch ${i}`))
  const word = (i) => `zq${i.toString(36)}marker`
  // 64 posts at once: the writer commits them in a few batches, and each
  // one is searchable once its own POST has answered.
  await Promise.all(
    Array.from({ length: 64 }, async (_, i) => {
      const c = convs[i % 8]
      const m = expectStatus(await alice.post(`/v1/conversations/${c.id}/messages`, { role: "user", content: `note ${word(i)} here` }), 201)
      const hit = await search(alice, word(i))
      assert.deepEqual(hit.items.map((h) => [h.conversation_id, h.message_id]), [[c.id, m.id]], `${word(i)} found at once`)
    }),
  )
  // A conversation deleted while messages are posted to it: its messages
  // (committed before the delete or not at all) never show.
  const gone = await conv(alice, "Doomed")
  const posts = Array.from({ length: 24 }, (_, i) => alice.post(`/v1/conversations/${gone.id}/messages`, { role: "user", content: `doomedword${i}` }))
  const del = alice.del(`/v1/conversations/${gone.id}`)
  const answers = await Promise.all(posts)
  expectStatus(await del, 204)
  for (const r of answers) assert.ok([201, 404].includes(r.status), `a post answers 201 or 404, not ${r.status}`)
  for (let i = 0; i < 24; i++) assert.equal((await search(alice, `doomedword${i}`)).items.length, 0, `doomedword${i}`)
  assert.equal((await search(alice, "doomed")).items.length, 0, "nor its title")
  // The others are all still there.
  for (let i = 0; i < 64; i += 9) assert.equal((await search(alice, word(i))).items.length, 1)
})

test("search - results are ranked and paged with a cursor; limit is clamped", async (t) => {
  const { alice } = await setup(t)
  const c = await conv(alice, "ranked", ["kiwi", "kiwi kiwi kiwi kiwi fruit", ...Array.from({ length: 7 }, (_, i) => `kiwi number ${i}`)])
  const all = await search(alice, "kiwi", "&limit=100")
  assert.equal(all.items.length, 9)
  for (let i = 1; i < all.items.length; i++) assert.ok(all.items[i - 1].rank >= all.items[i].rank, "best first")
  assert.equal(all.items[0].seq, 2, "the message that says kiwi four times ranks first")
  const seen = []
  let cursor = null
  do {
    const page = await search(alice, "kiwi", `&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`)
    assert.ok(page.items.length <= 4)
    seen.push(...page.items.map((h) => `${h.conversation_id}:${h.seq}`))
    cursor = page.next_cursor
  } while (cursor)
  assert.deepEqual(seen, all.items.map((h) => `${h.conversation_id}:${h.seq}`), "pages are slices of the ranked list")
  assert.equal(new Set(seen).size, 9)
  assert.ok(c.id)
  expectError(await alice.get(q("kiwi") + "&cursor=bogus"), 400, "invalid_cursor")
  expectError(await alice.get(q("kiwi") + "&cursor=s99999999"), 400, "invalid_cursor")
  expectError(await alice.get(q("kiwi") + "&limit=0"), 400, "invalid_limit")
  assert.equal((await search(alice, "kiwi", "&limit=1000")).items.length, 9)
})

test("search - hostile and malformed queries: a 400 with a clear JSON error or an ordinary answer, never a 500", async (t) => {
  const { srv, alice } = await setup(t)
  await conv(alice, "fuzz target", ['he said "hello" AND "goodbye" OR NOT (x) -y +z* near/2 {a} [b] ^c'])
  const refused = {
    "": "invalid_query",
    '"unclosed': "invalid_query",
    'a "b': "invalid_query",
    "*": "invalid_query",
    "**": "invalid_query",
    '""': "invalid_query",
    "- + ( ) : ^ ~ ! & | \\": "invalid_query",
    ["x".repeat(1025)]: "invalid_query",
    ["a ".repeat(17)]: "invalid_query",
  }
  for (const [s, code] of Object.entries(refused)) {
    const err = expectError(await alice.get(q(s)), 400, code, `q=${JSON.stringify(s).slice(0, 40)}`)
    assert.ok(err.message.includes("q"), `the message talks about q: ${err.message}`)
  }
  expectError(await alice.get("/v1/search"), 400, "invalid_query")
  expectError(await alice.get(`${q("a")}&q=b`), 400, "invalid_query")
  expectError(await alice.get("/v1/search?q=%FF%FE"), 400, null, "not UTF-8") // refused at the edge
  // Long queries, within the request line and headers' limit of 8 KiB.
  expectError(await alice.get("/v1/search?q=" + "a%20".repeat(1900)), 400, "invalid_query", "a 3.8 KB query of words")
  expectError(await alice.get("/v1/search?q=" + "x".repeat(7 * 1024)), 400, "invalid_query", "a 7 KB query")
  // Past it, the edge refuses the request (431, JSON) before any handler.
  expectError(await alice.get("/v1/search?q=" + "x".repeat(8_500)), 431, "headers_too_large", "an 8.5 KB query")
  expectError(await alice.get("/v1/search?q=" + "%22".repeat(3000)), 400, "invalid_query", "3000 quotes")
  expectError(await alice.get("/v1/search?q=" + "*".repeat(1000)), 400, "invalid_query", "1000 stars")
  // Operators and syntax of FTS5 and tsquery are plain text here.
  const odd = ['hello AND', "OR", "NOT hello", "hello*world", "he*llo", "\"hello\" NEAR(goodbye)", "hello:*", "'hello'", "hello & goodbye", "hello | x", "!hello", "hello <-> goodbye",
    "(hello", "hello)", "\"hello\"*", "*hello", "hello**", "body:hello", "{hello}", "hello\u0000x", "\u0001\u0002 hello", "héllo", "日本語", "🙂 hello", "hello\u202egoodbye", "ＡＢＣ"]
  for (const s of odd) {
    const res = await alice.get(q(s))
    assert.ok(res.status === 200 || res.status === 400, `q=${JSON.stringify(s)}: ${res.status} ${res.text}`)
    if (res.status === 400) expectError(res, 400, "invalid_query")
    else assert.ok(Array.isArray(res.json().items))
  }
  assert.equal((await search(alice, "NOT hello")).items.length, 1, "NOT is a word here (it is in the text)")
  assert.equal((await search(alice, '"hello" AND "goodbye"')).items.length, 1)
  expectStatus(await alice.get("/healthz"), 200)
  assert.equal((await fetch(`${srv.url}/v1/search?q=x`, { method: "POST", headers: { Authorization: `Bearer ${alice.token}` } })).status, 405)
  expectError(await client(srv, null).get(q("hello")), 401, "unauthorized")
})
