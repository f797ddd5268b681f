// The worker loop end to end against the real server: it waits for work on
// the feed, claims, streams tokens exactly once (also when an append's
// answer is lost), completes; a user's cancel stops the handler at once; a
// lost lease stops it too; a handler's error fails the session.
import assert from "node:assert/strict"
import { test } from "node:test"

import { type Session } from "../src/index.js"
import { runTurn, runWorker, type TurnOutcome } from "../src/worker.js"
import { createClient, mintJwt, sleep, startServer, until } from "./lib/server.js"

const ADMIN = "sdk-worker-admin"
const SECRET = "sdk-worker-secret"

async function setup(t: any, fetchImpl?: (u: string, i: RequestInit) => Promise<Response>) {
  const srv = await startServer(t, ["--admin-key", ADMIN, "--jwt-secret", SECRET])
  const user = createClient({ baseUrl: srv.url, token: mintJwt("alice", SECRET), outbox: "memory" })
  const worker = createClient({ baseUrl: srv.url, token: ADMIN, outbox: "memory", fetch: fetchImpl, retry: { baseDelayMs: 20 } })
  // Whatever a test's end, nothing it started keeps running: closing the
  // clients ends their loops, subscriptions and retries.
  t.after(() => {
    user.close()
    worker.close()
  })
  return { srv, user, worker }
}

test("worker - waits on the feed, claims, streams tokens exactly once, completes", { timeout: 30_000 }, async (t) => {
  let dropped = 0
  // The answer to the third append is lost after the server stored it.
  const lossy = async (url: string, init: RequestInit) => {
    const res = await fetch(url, init)
    if (url.endsWith("/stream") && init.method === "POST" && (init.headers as any)["Producer-Seq"] === "2" && dropped === 0) {
      dropped++
      await res.arrayBuffer()
      throw new TypeError("fetch failed")
    }
    return res
  }
  const { user, worker } = await setup(t, lossy)
  const stop = new AbortController()
  const outcomes: TurnOutcome[] = []
  const loop = runWorker(
    worker,
    async (ctx) => {
      const words = ["Day ", "1: ", "Alfama", ", ", "Belém"]
      for (const w of words) await ctx.write({ type: "delta", text: w })
      return { content: words.join(""), metadata: { model: "m1" } }
    },
    { leaseSeconds: 30, signal: stop.signal, producerId: "w1", onTurn: (_s, o) => outcomes.push(o) },
  )
  await sleep(300) // the worker is idle, waiting on the feed
  const conv = await user.conversations.create({ title: "trip" })
  const msg = await user.messages.send(conv.id, { role: "user", content: "Plan a trip", process: true })
  const sid = msg.session!.id
  const tokens: any[] = []
  for await (const item of user.sessions.stream(sid)) tokens.push(item) // ends when the session ends
  assert.equal(dropped, 1)
  assert.deepEqual(tokens.map((x) => x.text), ["Day ", "1: ", "Alfama", ", ", "Belém"], "every token once, in order")
  await until(() => outcomes.length === 1, 5000, "the turn's outcome")
  assert.deepEqual(outcomes, ["completed"])
  const s = await user.sessions.latest(conv.id)
  assert.equal(s.status, "completed")
  const items = (await user.messages.list(conv.id)).items
  assert.deepEqual(items.map((m) => [m.role, m.content]), [["user", "Plan a trip"], ["assistant", "Day 1: Alfama, Belém"]])
  assert.deepEqual(items[1].metadata, { model: "m1" })
  stop.abort()
  await loop
  user.close()
  worker.close()
})

test("worker - the user's cancel aborts the handler's signal promptly", { timeout: 30_000 }, async (t) => {
  const { user, worker } = await setup(t)
  const stop = new AbortController()
  let written = 0
  let abortedAt = 0
  const done = new Promise<TurnOutcome>((resolve) => {
    void runWorker(
      worker,
      async (ctx) => {
        ctx.signal.addEventListener("abort", () => (abortedAt = Date.now()))
        for (let i = 0; i < 200; i++) {
          await ctx.write({ i })
          written++
          await sleep(50)
        }
        return { content: "never" }
      },
      { leaseSeconds: 30, signal: stop.signal, onTurn: (_s, o) => resolve(o) },
    )
  })
  const conv = await user.conversations.create({})
  const msg = await user.messages.send(conv.id, { role: "user", content: "long", process: true })
  await until(() => written >= 3, 10_000, "tokens flowing")
  const cancelledAt = Date.now()
  await user.sessions.cancel(msg.session!.id)
  assert.equal(await done, "cancelled")
  assert.ok(abortedAt - cancelledAt < 1000, `aborted ${abortedAt - cancelledAt} ms after the cancel`)
  const s = await user.sessions.get(msg.session!.id)
  assert.equal(s.status, "cancelled")
  assert.equal((await user.messages.list(conv.id)).items.length, 1, "no answer was added")
  stop.abort()
  user.close()
  worker.close()
})

test("worker - a lease that is lost (heartbeats cannot get through) stops the turn, and the next attempt is fenced from it", { timeout: 30_000 }, async (t) => {
  let cut = false
  const gated = async (url: string, init: RequestInit) => {
    if (cut && /\/heartbeat$/.test(url)) throw new TypeError("fetch failed")
    return fetch(url, init)
  }
  const { user, worker } = await setup(t, gated)
  const conv = await user.conversations.create({})
  const msg = await user.messages.send(conv.id, { role: "user", content: "x", process: true })
  const claimed = (await worker.sessions.claim({ lease_seconds: 1 })) as Session
  assert.equal(claimed.id, msg.session!.id)
  cut = true
  let late: unknown = null
  const t0 = Date.now()
  const outcome = await runTurn(worker, claimed, async (ctx) => {
    await ctx.write({ t: "partial" })
    await new Promise((r) => ctx.signal.addEventListener("abort", r))
    // Anything the handler still tries is refused locally.
    await ctx.write({ t: "late" }).catch((e) => (late = e))
    return { content: "stale" }
  }, { leaseSeconds: 1 })
  assert.equal(outcome, "lease_lost")
  assert.ok(Date.now() - t0 < 3000)
  assert.ok(late, "a write after the lease was lost is refused")
  // The server hands the session on as attempt 2; the old attempt's writes are fenced.
  const back = await until(async () => {
    const s = await user.sessions.get(claimed.id)
    return s.attempt === 2 ? s : null
  }, 8000, "attempt 2")
  assert.equal(back!.status, "pending")
  const tokens = await user.readPage(`/v1/sessions/${claimed.id}/stream`, "-1")
  assert.deepEqual(tokens.items, [{ t: "partial" }, { type: "attempt", attempt: 2 }])
  user.close()
  worker.close()
})

test("worker - close() ends a runWorker loop that waits on the feed, and one that is inside a turn", { timeout: 30_000 }, async (t) => {
  const { user, worker } = await setup(t)
  // Idle: the loop waits on the feed for work.
  const idle = runWorker(worker, async () => ({ content: "x" }), { leaseSeconds: 30 })
  await sleep(300)
  const t0 = Date.now()
  worker.close()
  await idle
  assert.ok(Date.now() - t0 < 2000, `the idle loop ended ${Date.now() - t0} ms after close()`)

  // Busy: a second client's loop is inside a turn when it is closed; the turn's signal aborts.
  const busyClient = createClient({ baseUrl: (worker.transport as any).baseUrl, token: ADMIN, outbox: "memory" })
  t.after(() => busyClient.close())
  let aborted = false
  let started = false
  const outcomes: string[] = []
  const busy = runWorker(busyClient, async (ctx) => {
    started = true
    await new Promise((r) => ctx.signal.addEventListener("abort", r))
    aborted = true
    return { content: "never" }
  }, { leaseSeconds: 30, onTurn: (_s, o) => outcomes.push(o) })
  const conv = await user.conversations.create({})
  await user.messages.send(conv.id, { role: "user", content: "x", process: true })
  await until(() => started, 10_000, "the turn started")
  busyClient.close()
  await busy.catch(() => {})
  assert.ok(aborted, "the handler's signal aborted")
  assert.deepEqual(outcomes, ["gone"])
  // A closed client's calls reject at once, and its subscriptions end.
  await assert.rejects(busyClient.conversations.list(), (e: any) => e?.name === "ClientClosed")
  const sub = busyClient.feed.subscribe({ offset: "now", shared: false })
  const items: unknown[] = []
  for await (const it of sub) items.push(it)
  assert.equal(sub.closed, true)
})

test("worker - a feed event from before the claim (the session's creation, pending) does not stop the turn it claimed", { timeout: 30_000 }, async (t) => {
  // The worker's first claim is held until the session exists, and the feed's
  // live answers are late, so the session's creation event ("pending",
  // attempt 1) reaches the worker after it has claimed attempt 1.
  let releaseClaim!: () => void
  const claimGate = new Promise<void>((r) => (releaseClaim = r))
  let claims = 0
  const gated = async (url: string, init: RequestInit) => {
    if (/\/v1\/sessions\/claim$/.test(url) && claims++ === 0) await claimGate
    const res = await fetch(url, init)
    if (/\/v1\/events\?.*live=/.test(url)) await sleep(600)
    return res
  }
  const { user, worker } = await setup(t, gated)
  const stop = new AbortController()
  t.after(() => stop.abort())
  const outcomes: TurnOutcome[] = []
  let finished = false
  const loop = runWorker(worker, async (ctx) => {
    for (let i = 0; i < 20 && !ctx.signal.aborted; i++) {
      await ctx.write({ i })
      await sleep(50)
    }
    finished = !ctx.signal.aborted
    return { content: "done" }
  }, { leaseSeconds: 30, signal: stop.signal, onTurn: (_s, o) => outcomes.push(o) })
  await sleep(300)
  const conv = await user.conversations.create({})
  await user.messages.send(conv.id, { role: "user", content: "x", process: true })
  releaseClaim()
  await until(() => outcomes.length === 1, 15_000, "the turn's outcome")
  assert.deepEqual(outcomes, ["completed"], "the stale pending event did not stop the turn")
  assert.ok(finished)
  stop.abort()
  await loop
})

test("worker - a handler that throws fails the session with its message", { timeout: 30_000 }, async (t) => {
  const { user, worker } = await setup(t)
  const conv = await user.conversations.create({})
  const msg = await user.messages.send(conv.id, { role: "user", content: "x", process: true })
  const claimed = (await worker.sessions.claim({ lease_seconds: 30 })) as Session
  const outcome = await runTurn(worker, claimed, async () => {
    throw new Error("model unavailable")
  })
  assert.equal(outcome, "failed")
  const s = await user.sessions.get(msg.session!.id)
  assert.equal(s.status, "failed")
  assert.deepEqual(s.error, { reason: "worker_error", message: "model unavailable" })
  user.close()
  worker.close()
})
