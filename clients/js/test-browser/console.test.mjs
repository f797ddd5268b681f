// The web console (`parley serve` at /console) in headless Chromium against
// the real server: it lists what was made through the API (conversations
// and their messages, sessions, documents and their versions, snapshots,
// the feed, numbers from /metrics, blobs with an image preview); a message posted after the page opened
// appears without a reload; a processing session's tokens stream in; no
// console error; nothing overflows a 375 px wide screen. Screenshots go to
// .test-build/browser/console/ (printed in the log).
import assert from "node:assert/strict"
import fs from "node:fs"
import path from "node:path"
import { test } from "node:test"

import { ADMIN, launch, OUT, SECRET, startServer, until, watchedPage } from "./lib.mjs"

const SHOTS = path.join(OUT, "console")
fs.mkdirSync(SHOTS, { recursive: true })
console.log(`# console screenshots: ${SHOTS}`)

/** A call to the API, as the app's backend or a worker makes it. */
async function call(srv, method, p, body, token = ADMIN, headers = {}) {
  const h = { "Content-Type": "application/json", ...headers }
  if (token) h.Authorization = `Bearer ${token}`
  const res = await fetch(srv.url + p, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

/** A conversation with a message that asks for an answer, a document at version 2 and a snapshot. */
async function makeData(srv, token, title) {
  const conv = await call(srv, "POST", "/v1/conversations", { title }, token)
  const msg = await call(srv, "POST", `/v1/conversations/${conv.id}/messages`, { role: "user", content: "hello console", process: true }, token)
  await call(srv, "PUT", "/v1/documents/settings/u1", { theme: "dark" }, token)
  await call(srv, "PATCH", "/v1/documents/settings/u1", { font: 14 }, token)
  const snap = await call(srv, "POST", "/v1/snapshots", { source: `/v1/conversations/${conv.id}`, public: false }, token)
  return { conv, session: msg.session_id, snap }
}

/** A 2x2 PNG (red, green / blue, white). */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR4nGP4z8DAAMIM/4EAAB/uBfsL2WiLAAAAAElFTkSuQmCC",
  "base64",
)

/** Upload bytes through the API: the blob. */
async function uploadBlob(srv, bytes, type, token = ADMIN) {
  const h = { "Content-Type": type }
  if (token) h.Authorization = `Bearer ${token}`
  const res = await fetch(srv.url + "/v1/blobs", { method: "POST", headers: h, body: bytes })
  const text = await res.text()
  if (res.status !== 201) throw new Error(`POST /v1/blobs: ${res.status} ${text}`)
  return JSON.parse(text)
}

/** The page's width against its viewport: nothing may scroll sideways. */
async function noOverflow(page, what) {
  const { scroll, client } = await page.evaluate(() => ({ scroll: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth), client: document.documentElement.clientWidth }))
  assert.ok(scroll <= client, `${what}: the page is ${scroll} px wide in a ${client} px viewport`)
}

async function visit(page, hash, selector, name, text) {
  await page.evaluate((h) => (location.hash = h), hash)
  const loc = page.locator(selector, text ? { hasText: text } : undefined).first()
  await loc.waitFor({ timeout: 15_000 })
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true })
  return loc
}

test("console - signed in with the admin key: lists what the API made, a new message and a session's tokens arrive live, no console error", { timeout: 120_000 }, async (t) => {
  const srv = await startServer(t, ["--admin-key", ADMIN, "--jwt-secret", SECRET])
  const { conv, session, snap } = await makeData(srv, ADMIN, "Console trip")
  const browser = await launch()
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } })
  t.after(() => context.close())
  const errors = []
  const page = await watchedPage(context, errors)
  await page.goto(`${srv.url}/console`)

  // A server with auth: the sign-in form comes first, before any request.
  await page.locator("#signin").waitFor()
  await page.screenshot({ path: path.join(SHOTS, "desktop-signin.png") })
  await page.fill("#token", ADMIN)
  await page.click("#signin button[type=submit]")
  await page.locator("#stats .stat").first().waitFor()
  assert.equal(await page.evaluate(() => sessionStorage.getItem("parley.console.token")), ADMIN, "kept in sessionStorage")
  const stat = async (k) => page.locator(`#stats [data-key="${k}"] .n`).textContent()
  assert.equal(await stat("store"), "sqlite")
  assert.ok(Number((await stat("requests")).replace(/\D/g, "")) > 0, "requests counted")
  await page.screenshot({ path: path.join(SHOTS, "desktop-overview.png"), fullPage: true })
  // A reload would lose this; it must still be here at the end.
  await page.evaluate(() => (window.__sameDocument = true))

  await visit(page, "#conversations", "#conversations .conv", "desktop-conversations", "Console trip")
  await page.click(`#conversations .conv[data-id="${conv.id}"] a.title`)
  await page.locator("#messages .msg", { hasText: "hello console" }).waitFor()
  // Posted after the page opened: it appears without a reload.
  await call(srv, "POST", `/v1/conversations/${conv.id}/messages`, { role: "assistant", content: "posted after the page opened" })
  await page.locator("#messages .msg", { hasText: "posted after the page opened" }).waitFor({ timeout: 10_000 })
  assert.equal(await page.locator("#messages .msg").count(), 2, "each message once")
  await page.screenshot({ path: path.join(SHOTS, "desktop-conversation.png"), fullPage: true })

  // A worker claims the session and streams tokens: the sessions view shows them as they come.
  const claimed = await call(srv, "POST", "/v1/sessions/claim", { conversation_id: conv.id, lease_seconds: 60 })
  assert.equal(claimed.id, session)
  const tokens = ["Day ", "one: ", "Alfama, ", "then ", "Belém ", "and ", "pastéis."]
  let seq = 0
  const send = (text) => call(srv, "POST", `/v1/sessions/${session}/stream`, { type: "delta", text }, ADMIN, { "Producer-Id": "console-test", "Producer-Epoch": "0", "Producer-Seq": String(seq++) })
  for (const tok of tokens.slice(0, 2)) await send(tok)
  await visit(page, "#sessions", `#sessions .session[data-id="${session}"] .tokens`, "desktop-sessions-start", "Day one: ")
  const shown = () => page.locator(`#sessions .session[data-id="${session}"] .tokens`).first().textContent()
  assert.equal(await shown(), "Day one: ")
  for (const tok of tokens.slice(2)) {
    await send(tok)
    await new Promise((r) => setTimeout(r, 60))
  }
  await until(async () => (await shown()) === tokens.join(""), 10_000, "every token shown, once, in order")
  await page.screenshot({ path: path.join(SHOTS, "desktop-sessions-streamed.png"), fullPage: true })
  await call(srv, "POST", `/v1/sessions/${session}/complete`, { content: tokens.join("") })
  // One session's own page reads its (now closed) stream whole.
  await visit(page, `#sessions/${session}`, `.tokens[data-session="${session}"]`, "desktop-session", "pastéis.")

  const coll = await visit(page, "#documents", "#collections a", "desktop-documents", "settings")
  await coll.click()
  await page.locator('#documents .doc[data-id="u1"]', { hasText: "version 2" }).waitFor()
  assert.match(await page.locator('#documents .doc[data-id="u1"] pre').textContent(), /"font": 14/)
  await page.screenshot({ path: path.join(SHOTS, "desktop-document.png"), fullPage: true })

  const link = await visit(page, "#snapshots", `#snapshots .snap[data-id="${snap.id}"] a`, "desktop-snapshots")
  await link.click()
  await page.locator("#messages .msg", { hasText: "hello console" }).waitFor()

  // A blob uploaded through the API: listed with its size and type, an image preview
  // fetched with the token (an object URL the CSP allows), and a download.
  const img = await uploadBlob(srv, PNG, "image/png")
  const txt = await uploadBlob(srv, Buffer.from("plain text blob"), "text/plain")
  const card = await visit(page, "#blobs", `#blobs .blob[data-id="${img.id}"] img.preview[src^="blob:"]`, "desktop-blobs")
  const imgCard = page.locator(`#blobs .blob[data-id="${img.id}"]`)
  assert.equal(await imgCard.locator(".size").textContent(), `${PNG.length} B`)
  assert.equal(await imgCard.locator(".type").textContent(), "image/png")
  assert.match(await imgCard.locator(".title").textContent(), new RegExp(`^${img.id.slice(0, 12)}`))
  await until(async () => card.evaluate((el) => el.complete && el.naturalWidth === 2), 10_000, "the preview decoded")
  assert.equal(await page.locator(`#blobs .blob[data-id="${txt.id}"] img`).count(), 0, "no preview for text/plain")
  assert.deepEqual(await page.locator("#blobs .blob").evaluateAll((els) => els.map((e) => e.dataset.id)), [txt.id, img.id], "newest first")
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(`#blobs .blob[data-id="${txt.id}"] button.download`)])
  assert.equal(fs.readFileSync(await download.path(), "utf8"), "plain text blob")

  await visit(page, "#events", "#events .event", "desktop-events", "message.created")
  assert.ok((await page.locator("#events .event", { hasText: "session.updated" }).count()) > 0)

  assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload happened")
  await noOverflow(page, "desktop")
  assert.deepEqual([...errors], [], "no console error")
})

test("console - local mode at 375 px: no sign-in, every view fits the width, a message arrives live, no console error", { timeout: 120_000 }, async (t) => {
  const srv = await startServer(t, [])
  const long = "A-title-without-any-space-that-would-push-the-page-wider-than-a-phone-screen-" + "x".repeat(80)
  const { conv, session, snap } = await makeData(srv, null, long)
  await call(srv, "PUT", "/v1/documents/settings/wide", { note: "y".repeat(400) }, null)
  const blob = await uploadBlob(srv, PNG, "image/png", null)
  const browser = await launch()
  const context = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true })
  t.after(() => context.close())
  const errors = []
  const page = await watchedPage(context, errors)
  await page.goto(`${srv.url}/console`)
  await page.locator("#stats .stat").first().waitFor()
  assert.equal(await page.locator("#signin").isVisible(), false, "no token asked for in local mode")
  await page.screenshot({ path: path.join(SHOTS, "mobile-overview.png"), fullPage: true })
  await noOverflow(page, "overview")

  const views = [
    ["#conversations", "#conversations .conv", "mobile-conversations"],
    [`#conversations/${conv.id}`, "#messages .msg", "mobile-conversation"],
    ["#sessions", `#sessions .session[data-id="${session}"]`, "mobile-sessions"],
    ["#documents", "#collections a", "mobile-documents"],
    ["#documents/settings", '#documents .doc[data-id="wide"]', "mobile-document"],
    ["#snapshots", `#snapshots .snap[data-id="${snap.id}"]`, "mobile-snapshots"],
    [`#snapshots/${snap.id}`, "#messages .msg", "mobile-snapshot"],
    ["#blobs", `#blobs .blob[data-id="${blob.id}"] img.preview[src^="blob:"]`, "mobile-blobs"],
    ["#events", "#events .event", "mobile-events"],
  ]
  for (const [hash, sel, name] of views) {
    await visit(page, hash, sel, name)
    await noOverflow(page, hash)
  }
  // Same-origin requests pass local mode's Origin rule: the live read works.
  await page.evaluate((h) => (location.hash = h), `#conversations/${conv.id}`)
  await page.locator("#messages .msg", { hasText: "hello console" }).waitFor()
  await call(srv, "POST", `/v1/conversations/${conv.id}/messages`, { role: "user", content: "second, from the API" }, null)
  await page.locator("#messages .msg", { hasText: "second, from the API" }).waitFor({ timeout: 10_000 })
  await page.screenshot({ path: path.join(SHOTS, "mobile-conversation-live.png"), fullPage: true })
  await noOverflow(page, "conversation, live")
  assert.deepEqual([...errors], [], "no console error")
})
