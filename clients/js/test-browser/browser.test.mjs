// The SDK in a real browser (headless Chromium) against the real server:
// the IndexedDB outbox survives closing the tab and sends each write once;
// two tabs share one feed connection (Web Locks + BroadcastChannel), and
// the other tab takes over when the leader closes; a useChat app with
// ParleyChatTransport resumes an answer after a reload, every token once,
// and its stop keeps the partial answer. Screenshots go to
// .test-build/browser/.
import assert from "node:assert/strict"
import path from "node:path"
import { test } from "node:test"

import { createClient } from "../dist/index.js"
import { ADMIN, FULL, launch, mintJwt, OUT, query, SECRET, sleep, startApp, startServer, until, watchedPage } from "./lib.mjs"

async function setup(t, appOpts) {
  const srv = await startServer(t, ["--admin-key", ADMIN, "--jwt-secret", SECRET])
  const token = mintJwt("alice", SECRET)
  const alice = createClient({ baseUrl: srv.url, token, outbox: "memory" })
  t.after(() => alice.close())
  const app = await startApp(srv.url, appOpts)
  const browser = await launch()
  const context = await browser.newContext()
  t.after(() => context.close())
  return { srv, token, alice, app, context }
}

test("browser - the IndexedDB outbox survives closing the tab: a write whose answer was lost is stored once, in order", { timeout: 90_000 }, async (t) => {
  const { srv, token, alice, app, context } = await setup(t)
  const conv = await alice.conversations.create({ title: "outbox" })
  const url = `${app.url}/page.html?${query({})}`
  // The client, and what its outbox settles (also writes found after a reload).
  const boot = `window.settled = []
    window.c = Parley.createClient({ baseUrl: ${JSON.stringify(srv.url)}, token: ${JSON.stringify(token)}, outboxName: "t-outbox" })
    window.c.outbox.onSettled((s) => window.settled.push({ content: JSON.parse(s.entry.body).content, status: s.answer?.status ?? s.error?.code, replayed: s.answer?.headers.get("idempotent-replayed") ?? null }))`
  // Every POST of a message reaches the server, but its answer never reaches the page.
  let applied = 0
  const lose = async (route) => {
    if (route.request().method() !== "POST") return route.continue()
    applied++
    await route.fetch().catch(() => {})
    await route.abort("failed")
  }
  await context.route(`${srv.url}/v1/conversations/*/messages`, lose)
  const page1 = await context.newPage()
  await page1.goto(url)
  await page1.waitForFunction(() => !!window.Parley)
  await page1.evaluate(boot)
  await page1.evaluate((id) => {
    for (const text of ["a", "b"]) window.c.messages.send(id, { role: "user", content: text }).catch(() => {})
  }, conv.id)
  await until(() => applied >= 1, 10_000, "the first send reached the server")
  assert.equal(await page1.evaluate(async () => (await window.c.outbox.pending()).length), 2, "both writes wait in IndexedDB")
  await page1.screenshot({ path: path.join(OUT, "outbox-before-close.png") })
  await page1.close()
  await context.unroute(`${srv.url}/v1/conversations/*/messages`, lose)

  // A new tab of the same site: its client finds the writes and sends them, with their keys.
  const errors = []
  const page2 = await watchedPage(context, errors)
  await page2.goto(url)
  await page2.waitForFunction(() => !!window.Parley)
  await page2.evaluate(boot)
  await until(async () => (await page2.evaluate(async () => (await window.c.outbox.pending()).length)) === 0, 20_000, "the new tab's outbox drained")
  const stored = (await alice.messages.list(conv.id)).items
  assert.deepEqual(stored.map((m) => m.content), ["a", "b"], "each once, in order")
  // The new tab sent "a" with the key the closed tab made: the server answered from its record.
  assert.deepEqual(await page2.evaluate(() => window.settled), [
    { content: "a", status: 201, replayed: "true" },
    { content: "b", status: 201, replayed: null },
  ])
  assert.deepEqual(errors, [])
})

test("browser - two tabs share one feed connection; when the leader closes, the other takes over; nothing missed or repeated", { timeout: 90_000 }, async (t) => {
  const { srv, token, alice, app, context } = await setup(t)
  const live = new Map() // page → live requests to the feed
  const errors = []
  const open = async (name) => {
    const page = await watchedPage(context, errors)
    live.set(page, 0)
    page.on("request", (r) => {
      if (r.url().startsWith(`${srv.url}/v1/events`) && /[?&]live=/.test(r.url())) live.set(page, live.get(page) + 1)
    })
    await page.goto(`${app.url}/page.html`)
    await page.waitForFunction(() => !!window.Parley)
    await page.evaluate(
      ([base, tok]) => {
        window.events = []
        window.c = Parley.createClient({ baseUrl: base, token: tok, outboxName: "t-tabs" })
        window.sub = window.c.feed.subscribe({ offset: "now" }, (ev) => window.events.push(ev.conversation_id))
      },
      [srv.url, token],
    )
    return page
  }
  const a = await open("a")
  const b = await open("b")
  await sleep(1000)
  const created = []
  for (let i = 0; i < 3; i++) created.push((await alice.conversations.create({ title: `c${i}` })).id)
  const seen = (p) => p.evaluate(() => window.events.filter(Boolean))
  for (const p of [a, b]) await until(async () => (await seen(p)).length >= 3, 15_000, "both tabs get the events")
  for (const p of [a, b]) assert.deepEqual(await seen(p), created)
  const leaders = [...live.entries()].filter(([, n]) => n > 0)
  assert.equal(leaders.length, 1, `one tab holds the live connection (${[...live.values()]})`)
  const [leader] = leaders[0]
  const other = leader === a ? b : a
  await other.screenshot({ path: path.join(OUT, "tabs-follower.png") })

  // The leader's tab closes: the other one takes the lock and its own connection.
  await leader.close()
  await until(() => live.get(other) > 0, 15_000, "the other tab connects")
  const later = (await alice.conversations.create({ title: "after" })).id
  await until(async () => (await seen(other)).length >= 4, 15_000, "the event after the handover")
  await sleep(300)
  assert.deepEqual(await seen(other), [...created, later], "nothing missed or repeated")
  assert.deepEqual(errors, [])
})

/** The useChat page's messages as [role, text]. */
function shown(page) {
  return page.$$eval("#messages li", (lis) => lis.map((li) => [li.dataset.role, li.textContent]))
}

test("browser - a useChat app over ParleyChatTransport resumes an answer after a reload, every token once", { timeout: 90_000 }, async (t) => {
  const { token, srv, alice, app, context } = await setup(t, { delayMs: 80 })
  const conv = await alice.conversations.create({ title: "chat" })
  const errors = []
  const page = await watchedPage(context, errors)
  const url = `${app.url}/chat.html?${query({ parley: srv.url, token, c: conv.id })}`
  await page.goto(url)
  await page.fill("#input", "Plan a trip")
  await page.click("#send")
  await page.waitForFunction(() => (document.querySelector('#messages li[data-role="assistant"]')?.textContent ?? "").length >= 20, null, { timeout: 20_000 })
  const before = (await shown(page))[1][1]
  await page.screenshot({ path: path.join(OUT, "chat-before-reload.png") })
  await page.reload()
  await page.waitForFunction((full) => document.querySelector('#messages li[data-role="assistant"]')?.textContent === full && document.querySelector("#status")?.textContent === "ready", FULL, { timeout: 30_000 })
  await page.screenshot({ path: path.join(OUT, "chat-after-reload.png") })
  assert.ok(before.length < FULL.length, "the reload came mid-answer")
  assert.deepEqual(await shown(page), [["user", "Plan a trip"], ["assistant", FULL]])
  const stored = (await alice.messages.list(conv.id)).items
  assert.deepEqual(stored.map((m) => [m.role, m.content]), [["user", "Plan a trip"], ["assistant", FULL]])
  assert.deepEqual(app.turns.map((x) => x.outcome), ["completed"], "the answer went on while the page reloaded")
  assert.deepEqual(errors, [])
})

test("browser - the useChat app's stop cancels the answer and keeps the partial answer, also after a reload", { timeout: 90_000 }, async (t) => {
  const { token, srv, alice, app, context } = await setup(t, { delayMs: 80 })
  const conv = await alice.conversations.create({ title: "stop" })
  const errors = []
  const page = await watchedPage(context, errors)
  await page.goto(`${app.url}/chat.html?${query({ parley: srv.url, token, c: conv.id })}`)
  await page.fill("#input", "stop me")
  await page.click("#send")
  await page.waitForFunction(() => (document.querySelector('#messages li[data-role="assistant"]')?.textContent ?? "").length >= 16, null, { timeout: 20_000 })
  await page.click("#stop")
  await page.waitForFunction(() => document.querySelector("#status")?.textContent === "ready")
  const partialShown = (await shown(page))[1][1]
  await page.evaluate(() => window.transport.settled())
  const stored = await until(async () => {
    const items = (await alice.messages.list(conv.id)).items
    return items.length === 2 ? items : null
  }, 10_000, "the partial answer stored")
  const partial = stored[1].content
  assert.equal(stored[1].role, "assistant")
  assert.equal(stored[1].metadata.stopped, true)
  assert.ok(FULL.startsWith(partial) && partial.length < FULL.length && partial.startsWith(partialShown), `${JSON.stringify(partialShown)} ⊆ ${JSON.stringify(partial)}`)
  assert.equal((await alice.sessions.latest(conv.id)).status, "cancelled")
  await until(() => app.turns.length === 1, 10_000, "the route's turn ended")
  assert.deepEqual(app.turns.map((x) => x.outcome), ["cancelled"])
  await page.reload()
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 2)
  await sleep(500)
  assert.deepEqual(await shown(page), [["user", "stop me"], ["assistant", partial]])
  assert.equal(await page.textContent("#status"), "ready")
  await page.screenshot({ path: path.join(OUT, "chat-stopped.png") })
  assert.deepEqual(errors, [])
})
