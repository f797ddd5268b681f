// Browser behaviour in Node, with stand-ins: an IndexedDB (fake-indexeddb)
// that outlives a "reload", and window events (`online`,
// `visibilitychange`) that wake the outbox and live subscriptions at once
// instead of after their backoff.
import assert from "node:assert/strict"
import { test } from "node:test"
import { IDBFactory } from "fake-indexeddb"

import { IndexedDBOutboxStore, type Settled } from "../src/index.js"
import { createClient, sleep, startServer, until } from "./lib/server.js"

/** A window for the duration of a test: addEventListener on globalThis, navigator.onLine, document. */
function fakeWindow(t: { after: (fn: () => void) => void }) {
  const target = new EventTarget()
  const nav = { onLine: true }
  const doc = Object.assign(new EventTarget(), { visibilityState: "visible" })
  const g = globalThis as any
  const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator")
  g.addEventListener = target.addEventListener.bind(target)
  g.removeEventListener = target.removeEventListener.bind(target)
  Object.defineProperty(globalThis, "navigator", { value: nav, configurable: true, writable: true })
  g.document = doc
  t.after(() => {
    delete g.addEventListener
    delete g.removeEventListener
    delete g.document
    if (saved) Object.defineProperty(globalThis, "navigator", saved)
    else delete g.navigator
  })
  return { nav, doc, fire: (name: string) => target.dispatchEvent(new Event(name)) }
}

test("browser - the IndexedDB outbox survives a reload and drains exactly once", async (t) => {
  const srv = await startServer(t)
  const idb = new IDBFactory()
  const admin = createClient({ baseUrl: srv.url, outbox: "memory" })
  const conv = await admin.conversations.create({ title: "idb" })
  const offline = async () => {
    throw new TypeError("Failed to fetch")
  }
  const a = createClient({ baseUrl: srv.url, outbox: new IndexedDBOutboxStore("app", idb), fetch: offline, retry: { retries: 0 } })
  for (const text of ["a", "b"]) a.messages.send(conv.id, { role: "user", content: text }).catch(() => {})
  await until(async () => (await a.outbox.pending()).length === 2, 5000, "two pending")
  await sleep(50)
  a.close()

  const settled: Settled[] = []
  const b = createClient({ baseUrl: srv.url, outbox: new IndexedDBOutboxStore("app", idb) })
  b.outbox.onSettled((s) => settled.push(s))
  await until(() => settled.length === 2, 10_000, "the reloaded page drains")
  assert.deepEqual((await admin.messages.list(conv.id)).items.map((m) => m.content), ["a", "b"])
  const c = createClient({ baseUrl: srv.url, outbox: new IndexedDBOutboxStore("app", idb) })
  assert.deepEqual(await c.outbox.pending(), [])
  for (const x of [admin, b, c]) x.close()
})

test("browser - offline, the outbox does not even try; the `online` event drains it at once", async (t) => {
  const win = fakeWindow(t)
  const srv = await startServer(t)
  let calls = 0
  const counting = async (url: string, init: RequestInit) => {
    calls++
    return fetch(url, init)
  }
  win.nav.onLine = false
  // A long backoff: only the event can explain a quick send.
  const c = createClient({ baseUrl: srv.url, outbox: "memory", fetch: counting, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 }, random: () => 0.99 })
  const p = c.conversations.create({ title: "offline" })
  await sleep(300)
  assert.equal(calls, 0)
  win.nav.onLine = true
  const t0 = Date.now()
  win.fire("online")
  const conv = await p
  assert.ok(Date.now() - t0 < 2000)
  assert.equal(conv.title, "offline")
  assert.equal(calls, 1)
  c.close()
})

test("browser - a subscription waiting out its backoff reconnects at once on `online` or when the page is shown", async (t) => {
  const win = fakeWindow(t)
  const srv = await startServer(t)
  const c = createClient({ baseUrl: srv.url, outbox: "memory", retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 }, random: () => 0.99, tabs: false })
  const conv = await c.conversations.create({})
  const got: number[] = []
  const sub = c.messages.subscribe(conv.id, {}, (m) => got.push(m.seq))
  await c.messages.send(conv.id, { role: "user", content: 1 })
  await until(() => got.length === 1, 5000, "the first message")
  for (const wake of ["online", "visible"] as const) {
    await srv.kill9()
    await sleep(300) // the subscription fails and sleeps for about a minute
    await srv.start()
    await c.messages.send(conv.id, { role: "user", content: got.length + 1 })
    await sleep(200)
    const before = got.length
    if (wake === "online") win.fire("online")
    else win.doc.dispatchEvent(new Event("visibilitychange"))
    await until(() => got.length === before + 1, 3000, `woken by ${wake}`)
  }
  assert.deepEqual(got, [1, 2, 3])
  sub.close()
  c.close()
})
