// Live reads: many idle SSE subscribers held at once and woken by one
// append, long-poll wake-up and long-poll timeout.
import assert from "node:assert/strict"
import { execFileSync } from "node:child_process"
import fs from "node:fs"
import http from "node:http"
import { test } from "node:test"

import { append, createStream, positionOf, request } from "./lib/http.mjs"
import { sseParser } from "./lib/api.mjs"
import { TEST_PG_URL, startServer } from "./lib/server.mjs"

/** The soft limit on open files of this process (inherited by the server). */
function openFileLimit() {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))
    if (m) return m[1] === "unlimited" ? Infinity : Number(m[1])
  } catch {
    // not Linux: ask the shell
  }
  const out = execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim()
  return out === "unlimited" ? Infinity : Number(out)
}

/**
 * One SSE subscriber. Parses the event stream as it arrives and records the
 * events; onEvent is called for each.
 */
function openSse(port, path, agent, onEvent) {
  const sub = { events: [], status: 0, error: null, req: null }
  const req = http.request({ host: "127.0.0.1", port, path, agent, headers: { Accept: "text/event-stream" } }, (res) => {
    sub.status = res.statusCode
    res.setEncoding("utf8")
    const feed = sseParser((ev) => {
      sub.events.push(ev)
      onEvent(sub, ev)
    })
    res.on("data", feed)
    res.on("error", (err) => (sub.error = err))
    if (res.statusCode !== 200) onEvent(sub, { type: "http-error", data: String(res.statusCode) })
  })
  req.on("error", (err) => {
    sub.error = err
    onEvent(sub, { type: "socket-error", data: err.code ?? err.message })
  })
  req.end()
  sub.req = req
  return sub
}

function isUpToDateControl(ev) {
  if (ev.type !== "control") return false
  try {
    return JSON.parse(ev.data).upToDate === true
  } catch {
    return false
  }
}

test("live - 2,000 concurrent idle SSE readers are held and each receives the next append", { timeout: 80_000 }, async (t) => {
  const readers = 2000
  const limit = openFileLimit()
  const needed = readers + 500 // sockets plus the process's own files, with room
  assert.ok(
    limit >= needed,
    `the open-file limit (ulimit -n) is ${limit}; this test needs at least ${needed} ` +
      `(${readers} sockets in this process and as many in the server). Raise it with ulimit -n before running.`,
  )

  const srv = await startServer({ t, args: ["--sse-recycle", "120000"] })
  const name = "live/fanout"
  assert.equal((await createStream(srv.url, name)).status, 201)
  await append(srv.url, name, "history that must not be replayed")

  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const subs = []
  t.after(() => {
    for (const s of subs) s.req.destroy()
    agent.destroy()
  })

  const payload = `wake-up ${Date.now()} ${Math.random().toString(36).slice(2)}`
  let ready = 0
  let woken = 0
  const failures = []
  let onReady = () => {}
  let onWoken = () => {}
  const onEvent = (sub, ev) => {
    if (ev.type === "http-error" || ev.type === "socket-error") {
      failures.push(`${ev.type}: ${ev.data}`)
      onReady()
      onWoken()
      return
    }
    if (!sub.ready && isUpToDateControl(ev)) {
      sub.ready = true
      ready++
      onReady()
    } else if (ev.type === "data" && !sub.woken) {
      sub.woken = true
      sub.payload = ev.data
      woken++
      onWoken()
    }
  }

  // Open the subscribers with a bounded number of connects in progress, so
  // the listen backlog is never the thing under test.
  const openStart = Date.now()
  const window = 200
  await new Promise((resolve, reject) => {
    const deadline = setTimeout(
      () => reject(new Error(`only ${ready} of ${readers} SSE readers got their first control event within 40 s`)),
      40_000,
    )
    const pump = () => {
      if (failures.length) {
        clearTimeout(deadline)
        reject(new Error(`SSE readers failed while connecting: ${failures.slice(0, 5).join("; ")}`))
        return
      }
      while (subs.length < readers && subs.length - ready < window)
        subs.push(openSse(srv.port, `/v1/stream/${name}?offset=now&live=sse`, agent, onEvent))
      if (ready === readers) {
        clearTimeout(deadline)
        resolve()
      }
    }
    onReady = pump
    pump()
  })
  const openMs = Date.now() - openStart
  assert.equal(subs.filter((s) => s.status === 200).length, readers)
  // Nothing but the control event yet: offset=now skips the history.
  const early = subs.filter((s) => s.events.some((e) => e.type === "data"))
  assert.equal(early.length, 0, "readers at offset=now received data before the append")

  // Every connection is still held: the server can serve another request.
  assert.equal((await request(srv.url, "/healthz")).status, 200)

  const appendStart = Date.now()
  const res = await append(srv.url, name, payload)
  assert.ok(res.status >= 200 && res.status < 300, `append: ${res.status} ${res.text}`)
  await new Promise((resolve, reject) => {
    const deadline = setTimeout(
      () => reject(new Error(`only ${woken} of ${readers} SSE readers received the append within 20 s`)),
      20_000,
    )
    onWoken = () => {
      if (failures.length) {
        clearTimeout(deadline)
        reject(new Error(`SSE readers failed while waiting: ${failures.slice(0, 5).join("; ")}`))
      } else if (woken === readers) {
        clearTimeout(deadline)
        resolve()
      }
    }
    onWoken()
  })
  const fanoutMs = Date.now() - appendStart
  const wrong = subs.filter((s) => s.payload !== payload)
  assert.equal(wrong.length, 0, `readers that got another payload, e.g. ${JSON.stringify(wrong[0]?.payload)}`)
  t.diagnostic(`${readers} readers connected in ${openMs} ms; all woken ${fanoutMs} ms after the append`)
})

test("live - SSE readers of one stream share each event: every reader gets every message once, in order, with its own control", { timeout: 60_000 }, async (t) => {
  // The first reader woken by an append reads the event from the store and
  // the others at the same position copy it (api/streams.c); a reader that
  // is behind, or one on another stream, reads its own.
  const srv = await startServer({ t, args: ["--sse-recycle", "120000"] })
  assert.equal((await createStream(srv.url, "live/shared-json", "application/json")).status, 201)
  assert.equal((await createStream(srv.url, "live/shared-text", "text/plain")).status, 201)
  await append(srv.url, "live/shared-json", JSON.stringify({ n: -1 }), "application/json")
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  const subs = []
  t.after(() => {
    for (const s of subs) s.req.destroy()
    agent.destroy()
  })
  const open = (path) => {
    const sub = openSse(srv.port, path, agent, () => {})
    subs.push(sub)
    return sub
  }
  const json = Array.from({ length: 20 }, () => open("/v1/stream/live/shared-json?offset=now&live=sse"))
  const text = Array.from({ length: 5 }, () => open("/v1/stream/live/shared-text?offset=now&live=sse"))
  const upToDate = (sub) => sub.events.some(isUpToDateControl)
  const waitFor = async (cond, what) => {
    const deadline = Date.now() + 20_000
    while (!cond()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  await waitFor(() => [...json, ...text].every(upToDate), "every reader's first control event")
  const messages = 30
  for (let i = 0; i < messages; i++) {
    assert.equal((await append(srv.url, "live/shared-json", JSON.stringify({ n: i, pad: "x".repeat(i * 7) }), "application/json")).status, 204)
    assert.equal((await append(srv.url, "live/shared-text", `line ${i}\n`, "text/plain")).status, 204)
    if (i === 10) json.push(open("/v1/stream/live/shared-json?offset=-1&live=sse")) // behind: from the start
  }
  const jsonOf = (sub) => sub.events.filter((e) => e.type === "data").flatMap((e) => JSON.parse(e.data))
  const textOf = (sub) => sub.events.filter((e) => e.type === "data").map((e) => e.data).join("\n")
  await waitFor(() => json.every((s) => jsonOf(s).some((m) => m.n === messages - 1)), "the last JSON message at every reader")
  await waitFor(() => text.every((s) => textOf(s).includes(`line ${messages - 1}`)), "the last text line at every reader")
  const want = Array.from({ length: messages }, (_, i) => i)
  json.forEach((sub, i) => {
    assert.equal(sub.status, 200)
    const got = jsonOf(sub).map((m) => m.n)
    assert.deepEqual(got, i === json.length - 1 ? [-1, ...want] : want, `JSON reader ${i}`)
    for (const m of jsonOf(sub)) if (m.n >= 0) assert.equal(m.pad, "x".repeat(m.n * 7))
    // Every data event is followed by a control event whose offset moves forward.
    const offsets = sub.events.filter((e) => e.type === "control").map((e) => JSON.parse(e.data).streamNextOffset)
    assert.deepEqual(offsets, [...offsets].sort(), `reader ${i}: control offsets in order`)
    assert.equal(new Set(offsets).size, offsets.length, `reader ${i}: no control offset twice`)
  })
  for (const [i, sub] of text.entries()) {
    const lines = textOf(sub).split("\n").filter((l) => l.startsWith("line "))
    assert.deepEqual(lines, want.map((n) => `line ${n}`), `text reader ${i}`)
  }
})

test("live - long-poll wakes on append", { timeout: 30_000 }, async (t) => {
  const timeoutMs = 10_000
  const srv = await startServer({ t, args: ["--long-poll-timeout", String(timeoutMs)] })
  const name = "live/poll"
  assert.equal((await createStream(srv.url, name)).status, 201)
  const first = await append(srv.url, name, "first")
  const tail = first.headers["stream-next-offset"]
  assert.equal(positionOf(tail), 5)

  const start = Date.now()
  const poll = request(srv.url, `/v1/stream/${name}?offset=${tail}&live=long-poll`, { timeoutMs: 20_000 })
  // Let the poll park on the stream before the append.
  await new Promise((r) => setTimeout(r, 300))
  const second = await append(srv.url, name, "second")
  assert.ok(second.status >= 200 && second.status < 300)
  const res = await poll
  const elapsed = Date.now() - start
  assert.equal(res.status, 200, `long-poll: ${res.status} ${res.text}`)
  assert.equal(res.text, "second")
  assert.equal(positionOf(res.headers["stream-next-offset"]), 11)
  assert.ok(elapsed < timeoutMs / 2, `long-poll answered after ${elapsed} ms, not on the append`)

  // Polling again from the new tail parks again (then the append wakes it).
  const again = request(srv.url, `/v1/stream/${name}?offset=${res.headers["stream-next-offset"]}&live=long-poll`)
  await new Promise((r) => setTimeout(r, 100))
  await append(srv.url, name, "third")
  const res2 = await again
  assert.equal(res2.status, 200)
  assert.equal(res2.text, "third")
})

test("live - long-poll times out with 204", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--long-poll-timeout", "500"] })
  const name = "live/idle"
  assert.equal((await createStream(srv.url, name)).status, 201)
  const first = await append(srv.url, name, "only")
  const tail = first.headers["stream-next-offset"]

  const start = Date.now()
  const res = await request(srv.url, `/v1/stream/${name}?offset=${tail}&live=long-poll`, { timeoutMs: 10_000 })
  const elapsed = Date.now() - start
  assert.equal(res.status, 204, `long-poll on an idle stream: ${res.status} ${res.text}`)
  assert.equal(res.body.length, 0)
  assert.equal(res.headers["stream-next-offset"], tail)
  assert.equal(res.headers["stream-up-to-date"], "true")
  assert.ok(elapsed >= 400, `204 after ${elapsed} ms, before the 500 ms timeout`)
  assert.ok(elapsed < 5_000, `204 after ${elapsed} ms, long after the 500 ms timeout`)
})

test("live - the WAL stays bounded under steady appends with hundreds of SSE readers", { timeout: 300_000, skip: TEST_PG_URL ? "SQLite only: the WAL file is SQLite's" : false }, async (t) => {
  // RELIABILITY.md item 7: live readers hold no read transaction, so
  // checkpoints are never starved and the WAL is reused instead of growing.
  // 300 SSE readers follow one stream that gets small appends, while other
  // writers push 64 KiB appends (far more bytes than the WAL may hold).
  const srv = await startServer({ t, args: ["--sse-recycle", "120000"] })
  assert.equal((await createStream(srv.url, "tail", "application/json")).status, 201)
  assert.equal((await createStream(srv.url, "bulk", "application/octet-stream")).status, 201)
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity })
  t.after(() => agent.destroy())
  let received = 0
  const readers = []
  for (let i = 0; i < 300; i++)
    readers.push(openSse(srv.port, "/v1/stream/tail?offset=now&live=sse", agent, (sub, ev) => {
      if (ev.type === "data") received++
    }))
  t.after(() => readers.forEach((r) => r.req.destroy()))

  const big = Buffer.alloc(64 * 1024, 7)
  const wagent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  t.after(() => wagent.destroy())
  // A fixed volume, however long it takes: the check is the WAL's size, not
  // the speed (a loaded machine or a sanitizer build is only slower).
  const target = 160 * 1024 * 1024 // bytes to push through the WAL
  let written = 0
  let ticks = 0
  const bulk = Array.from({ length: 8 }, async () => {
    while (written < target) {
      const res = await append(srv.url, "bulk", big, "application/octet-stream", { agent: wagent })
      assert.equal(res.status, 204)
      written += big.length
    }
  })
  const tail = (async () => {
    while (written < target) {
      const res = await append(srv.url, "tail", JSON.stringify({ tick: ticks }), "application/json", { agent: wagent })
      assert.equal(res.status, 204)
      ticks++
      await new Promise((ok) => setTimeout(ok, 20))
    }
  })()
  await Promise.all([...bulk, tail])
  const wal = fs.statSync(`${srv.dataDir}/parley.db-wal`).size
  // The writer completes a checkpoint once the WAL passes 4,000 pages
  // (16 MiB); allow for a batch on top. Without checkpoints it would hold
  // every byte written.
  assert.ok(wal < 48 * 1024 * 1024, `WAL grew to ${wal} bytes after ${written} bytes appended`)
  assert.ok(received > 0, "SSE readers received nothing")
})
