// Soak (RELIABILITY.md item 12): steady mixed load for a bounded time, then
// verify that nothing was lost, duplicated or reordered, that the only
// errors were the expected ones, and that RSS and descriptors are back near
// their baseline.
//
// Load, all at once for PARLEY_SOAK_SECONDS (default 60):
//   - JSON appends from two producers (Producer-Id/Epoch/Seq), each to its
//     own stream; every 10th append is sent twice (a deliberate retry, which
//     must answer 204 and store nothing);
//   - byte appends from a third producer, retried the same way;
//   - chat messages from two clients with Idempotency-Keys; every 7th is
//     sent again with the same key (must replay the same message), and every
//     50th key is reused with another body (the one expected error: 422
//     idempotency_key_reused);
//   - catch-up readers that read the JSON streams from the start, page by
//     page, and check each view is the producer's sequence without a gap;
//   - one SSE tail per JSON stream from the start, with the SSE lifetime cut
//     to 15 s so each tail reconnects from its last offset several times.
// Then: every stream read back equals what was acknowledged; each SSE
// tail saw exactly that; messages are present once with seq gap-free; no
// unexpected status; sockets back to the baseline, and RSS within a bound
// of the warm baseline: RSS_BOUND plus three times the growth of the
// database files, since the new pages may legitimately sit in the page
// caches of the writer, the checkpointer and the readers' connections
// (SQLite caches are per connection and never shrink). The precise
// per-connection leak check is the churn test's; this one, at the default
// load (about 34,000 requests a minute), catches a leak of about 1 KiB per
// request.
import { test } from "node:test"
import assert from "node:assert/strict"
import http from "node:http"
import fs from "node:fs"
import { startServer } from "../blackbox/lib/server.mjs"
import { request } from "../blackbox/lib/http.mjs"
import { sseParser } from "../blackbox/lib/api.mjs"
import { fdCount, fdSummary, MiB, rssBytes, settle, socketCount, tcpStates } from "./lib/proc.mjs"

const SECONDS = Number(process.env.PARLEY_SOAK_SECONDS ?? 60)
const RSS_BOUND = 16 * MiB
const json = { "Content-Type": "application/json" }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A resuming SSE tail of a JSON stream: collects every message, reconnects from the last control offset. */
function sseTail(srv, path, stats) {
  const tail = { messages: [], offset: "-1", reconnects: 0, stopped: false, req: null }
  const connect = () => {
    if (tail.stopped) return
    const req = http.request(
      { host: "127.0.0.1", port: srv.port, path: `${path}?offset=${tail.offset}&live=sse`, agent: false, headers: { Accept: "text/event-stream" } },
      (res) => {
        if (res.statusCode !== 200) stats.unexpected.push(`SSE ${path}: ${res.statusCode}`)
        res.setEncoding("utf8")
        let pending = [] // data events since the last control event
        const feed = sseParser((ev) => {
          if (ev.type === "data") {
            const v = JSON.parse(ev.data)
            pending.push(...(Array.isArray(v) ? v : [v]))
          } else if (ev.type === "control") {
            // A data event and its control event come together: commit both.
            tail.messages.push(...pending)
            pending = []
            tail.offset = JSON.parse(ev.data).streamNextOffset ?? tail.offset
          }
        })
        res.on("data", feed)
        res.on("end", () => {
          if (tail.stopped) return
          tail.reconnects++
          setTimeout(connect, 10)
        })
        res.on("error", () => {})
      },
    )
    req.on("error", (err) => {
      if (!tail.stopped) {
        stats.unexpected.push(`SSE ${path}: ${err.message}`)
        setTimeout(connect, 100)
      }
    })
    req.end()
    tail.req = req
  }
  connect()
  tail.stop = () => {
    tail.stopped = true
    tail.req?.destroy()
  }
  return tail
}

/** Every message of a JSON stream from the start, following pages. */
async function readJsonStream(base, name, agent) {
  const out = []
  let offset = "-1"
  for (let page = 0; page < 10_000; page++) {
    const res = await request(base, `/v1/stream/${name}?offset=${offset}`, { agent })
    if (res.status !== 200) throw new Error(`read ${name}: ${res.status} ${res.text}`)
    out.push(...JSON.parse(res.text || "[]"))
    const next = res.headers["stream-next-offset"]
    if (res.headers["stream-up-to-date"] === "true" || next === offset) return out
    offset = next
  }
  throw new Error("too many pages")
}

async function readBytes(base, name) {
  const parts = []
  let offset = "-1"
  for (;;) {
    const res = await request(base, `/v1/stream/${name}?offset=${offset}`)
    if (res.status !== 200) throw new Error(`read ${name}: ${res.status}`)
    parts.push(res.body)
    const next = res.headers["stream-next-offset"]
    if (res.headers["stream-up-to-date"] === "true" || next === offset) break
    offset = next
  }
  return Buffer.concat(parts).toString("latin1")
}

test("soak - mixed load: nothing lost or duplicated, only expected errors, RSS and descriptors back near baseline", { timeout: (SECONDS + 120) * 1000 }, async (t) => {
  assert.ok(SECONDS >= 5, "PARLEY_SOAK_SECONDS must be at least 5")
  const srv = await startServer({ t, args: ["--sse-recycle", "15000"] })
  const pid = srv.proc.pid
  const stats = { unexpected: [], expected422: 0, appendRetries: 0, messageReplays: 0, catchUps: 0, requests: 0 }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })
  t.after(() => agent.destroy())
  const call = async (path, opts) => {
    stats.requests++
    return request(srv.url, path, { agent, ...opts })
  }

  for (const name of ["soak-json-0", "soak-json-1"])
    assert.equal((await call(`/v1/stream/${name}`, { method: "PUT", headers: json })).status, 201)
  assert.equal((await call("/v1/stream/soak-bytes", { method: "PUT", headers: { "Content-Type": "application/octet-stream" } })).status, 201)
  const conv = await call("/v1/conversations", { method: "POST", headers: json, body: '{"title":"soak"}' })
  assert.equal(conv.status, 201)
  const convId = JSON.parse(conv.body).id

  const socketBase = socketCount(pid)
  const deadline = Date.now() + SECONDS * 1000
  const warmAt = Date.now() + Math.min(5000, SECONDS * 200)
  let rssWarm = 0
  let dbWarm = 0
  const dbSize = () =>
    ["parley.db", "parley.db-wal"].reduce((n, f) => n + (fs.existsSync(`${srv.dataDir}/${f}`) ? fs.statSync(`${srv.dataDir}/${f}`).size : 0), 0)

  // --- producers -------------------------------------------------------
  const acked = { "soak-json-0": [], "soak-json-1": [] }
  const jsonProducer = async (k) => {
    const name = `soak-json-${k}`
    for (let n = 0; Date.now() < deadline; n++) {
      const headers = { ...json, "Producer-Id": `p-${k}`, "Producer-Epoch": "0", "Producer-Seq": String(n) }
      const body = JSON.stringify({ p: k, n })
      const sends = n % 10 === 9 ? 2 : 1
      for (let i = 0; i < sends; i++) {
        const res = await call(`/v1/stream/${name}`, { method: "POST", headers, body })
        // The first send is stored (200 with the producer headers); the
        // retry is a duplicate (204, nothing stored).
        if (res.status !== (i === 0 ? 200 : 204)) stats.unexpected.push(`append ${name} #${n} (send ${i + 1}): ${res.status} ${res.text}`)
        if (i === 0 && res.status === 200) acked[name].push(n)
        if (i === 1) stats.appendRetries++
      }
      await sleep(2)
    }
  }
  let ackedBytes = ""
  const bytesProducer = async () => {
    for (let n = 0; Date.now() < deadline; n++) {
      const body = `b${n};`
      const headers = { "Content-Type": "application/octet-stream", "Producer-Id": "p-bytes", "Producer-Epoch": "0", "Producer-Seq": String(n) }
      const sends = n % 10 === 9 ? 2 : 1
      for (let i = 0; i < sends; i++) {
        const res = await call("/v1/stream/soak-bytes", { method: "POST", headers, body })
        // The first send is stored (200 with the producer headers); the
        // retry is a duplicate (204, nothing stored).
        if (res.status !== (i === 0 ? 200 : 204)) stats.unexpected.push(`append bytes #${n} (send ${i + 1}): ${res.status} ${res.text}`)
        if (i === 0 && res.status === 200) ackedBytes += body
        if (i === 1) stats.appendRetries++
      }
      await sleep(2)
    }
  }

  // --- messages with Idempotency-Keys ------------------------------------
  const ackedMessages = new Map() // content -> seq
  const messenger = async (c) => {
    for (let n = 0; Date.now() < deadline; n++) {
      const content = `m${c}-${n}`
      const send = (text) =>
        call(`/v1/conversations/${convId}/messages`, {
          method: "POST",
          headers: { ...json, "Idempotency-Key": `soak-${content}` },
          body: JSON.stringify({ role: "user", content: text }),
        })
      const res = await send(content)
      if (res.status !== 201) {
        stats.unexpected.push(`message ${content}: ${res.status} ${res.text}`)
        continue
      }
      const seq = JSON.parse(res.body).seq
      ackedMessages.set(content, seq)
      if (n % 7 === 6) {
        const again = await send(content)
        stats.messageReplays++
        if (again.status !== 201 || again.headers["idempotent-replayed"] !== "true" || JSON.parse(again.body).seq !== seq)
          stats.unexpected.push(`replay of ${content}: ${again.status} ${again.headers["idempotent-replayed"]} ${again.text}`)
      }
      if (n % 50 === 49) {
        const reused = await send(`${content}-other`)
        if (reused.status === 422 && JSON.parse(reused.body).error?.code === "idempotency_key_reused") stats.expected422++
        else stats.unexpected.push(`key reuse of ${content}: ${reused.status} ${reused.text}`)
      }
      await sleep(3)
    }
  }

  // --- catch-up readers -------------------------------------------------
  const catchUp = async (k) => {
    const name = `soak-json-${k}`
    const ragent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      while (Date.now() < deadline) {
        const before = acked[name].length
        const got = await readJsonStream(srv.url, name, ragent)
        stats.catchUps++
        for (let i = 0; i < got.length; i++) {
          if (got[i].n !== i || got[i].p !== k) {
            stats.unexpected.push(`catch-up of ${name}: message ${i} is ${JSON.stringify(got[i])}`)
            break
          }
        }
        if (got.length < before) stats.unexpected.push(`catch-up of ${name}: ${got.length} messages, ${before} acknowledged before the read`)
        await sleep(200)
      }
    } finally {
      ragent.destroy()
    }
  }

  const tails = [0, 1].map((k) => sseTail(srv, `/v1/stream/soak-json-${k}`, stats))
  const warm = (async () => {
    await sleep(warmAt - Date.now())
    rssWarm = rssBytes(pid)
    dbWarm = dbSize()
  })()
  await Promise.all([jsonProducer(0), jsonProducer(1), bytesProducer(), messenger(0), messenger(1), catchUp(0), catchUp(1), warm])

  // --- verification -------------------------------------------------------
  for (const k of [0, 1]) {
    const name = `soak-json-${k}`
    const got = await readJsonStream(srv.url, name)
    assert.deepEqual(got.map((m) => m.n), acked[name], `${name}: stored messages differ from the acknowledged`)
    await settle(() => tails[k].messages.length >= got.length, 10_000)
    assert.deepEqual(tails[k].messages.map((m) => m.n), acked[name], `${name}: the SSE tail's view differs from the acknowledged`)
  }
  assert.equal(await readBytes(srv.url, "soak-bytes"), ackedBytes, "byte stream differs from the acknowledged appends")
  const seen = new Map()
  let after = 0
  for (;;) {
    const res = await request(srv.url, `/v1/conversations/${convId}/messages?after=${after}&limit=100`)
    assert.equal(res.status, 200)
    const page = JSON.parse(res.body)
    for (const m of page.items) {
      assert.equal(m.seq, after + 1, "message seq has a gap")
      after = m.seq
      assert.ok(!seen.has(m.content), `${m.content} stored twice`)
      seen.set(m.content, m.seq)
    }
    if (!page.next_cursor && page.items.length < 100) break
  }
  for (const [content, seq] of ackedMessages) assert.equal(seen.get(content), seq, `message ${content}`)
  assert.equal(seen.size, ackedMessages.size, "messages nobody acknowledged are stored")
  assert.deepEqual(stats.unexpected.slice(0, 10), [], `${stats.unexpected.length} unexpected answers`)

  // --- resources ----------------------------------------------------------
  tails.forEach((tl) => tl.stop())
  agent.destroy()
  const socketsBack = await settle(() => socketCount(pid) <= socketBase, 5000)
  const rssEnd = rssBytes(pid)
  const dbGrowth = Math.max(0, dbSize() - dbWarm)
  const reconnects = tails.reduce((n, tl) => n + tl.reconnects, 0)
  t.diagnostic(
    `${SECONDS} s: ${stats.requests} requests; acknowledged ${acked["soak-json-0"].length + acked["soak-json-1"].length} JSON appends, ` +
      `${ackedBytes.length} bytes in byte appends, ${ackedMessages.size} messages; ${stats.appendRetries} producer retries and ` +
      `${stats.messageReplays} key replays stored nothing; ${stats.expected422} expected 422s; ${stats.catchUps} catch-up reads; ` +
      `${reconnects} SSE reconnections, tails equal to the writers' view; 0 unexpected answers; ` +
      `RSS ${(rssWarm / MiB).toFixed(1)} MiB warm, ${(rssEnd / MiB).toFixed(1)} MiB at the end (database grew ${(dbGrowth / MiB).toFixed(1)} MiB; bound ${((RSS_BOUND + 3 * dbGrowth) / MiB).toFixed(1)} MiB over the warm RSS); ` +
      `descriptors ${fdCount(pid)} (sockets ${socketCount(pid)}, baseline ${socketBase})`,
  )
  assert.ok(socketsBack, `sockets not back to the baseline ${socketBase}: ${fdSummary(pid)}; TCP: ${tcpStates(pid, srv.port)}`)
  assert.ok(rssEnd - rssWarm < RSS_BOUND + 3 * dbGrowth, `RSS grew from ${rssWarm} to ${rssEnd} bytes (database +${dbGrowth})`)
  assert.ok(stats.expected422 > 0 || SECONDS < 20, "no key reuse was tried")
  assert.equal(await srv.stop(), 0, "clean exit after the soak")
})
