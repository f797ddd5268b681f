// Readers under hostile conditions: readers that vanish while parked,
// readers that never read, and catch-up reads of large streams in one
// response.
import assert from "node:assert/strict"
import fs from "node:fs"
import net from "node:net"
import { test } from "node:test"

import { append, createStream, request } from "./lib/http.mjs"
import { sleep } from "./lib/api.mjs"
import { startServer } from "./lib/server.mjs"

/** Open descriptors of a process. */
function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM). */
function statusKiB(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  return m ? Number(m[1]) : NaN
}

/** Poll until cond() is true or ms pass; returns the last value of cond(). */
async function waitFor(cond, ms, step = 50) {
  const until = Date.now() + ms
  for (;;) {
    const v = cond()
    if (v || Date.now() >= until) return v
    await sleep(step)
  }
}

/**
 * Open a raw connection and send one GET. Resolves the socket once it is
 * connected; sock.received counts the bytes that came back.
 */
function rawGet(port, path) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port }, () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
      resolve(sock)
    })
    sock.received = 0
    sock.on("data", (b) => (sock.received += b.length))
    sock.on("error", () => {})
    sock.once("error", reject)
  })
}

async function openMany(port, path, n) {
  const socks = []
  for (let i = 0; i < n; i += 50) {
    const batch = []
    for (let k = i; k < Math.min(n, i + 50); k++) batch.push(rawGet(port, path))
    socks.push(...(await Promise.all(batch)))
  }
  return socks
}

for (const mode of ["long-poll", "sse"]) {
  test(`readers - parked ${mode} readers that reset or close are released within about a second`, { timeout: 60_000 }, async (t) => {
    const srv = await startServer({ t, args: ["--long-poll-timeout", "60000", "--sse-recycle", "120000"] })
    const name = `readers/vanish-${mode}`
    assert.equal((await createStream(srv.url, name)).status, 201)
    await append(srv.url, name, "history")
    const pid = srv.proc.pid
    // Warm up: every worker thread opens its read connection to the store.
    await Promise.all(Array.from({ length: 32 }, () => request(srv.url, `/v1/stream/${name}?offset=-1`)))
    await sleep(200)
    const baseline = fdCount(pid)

    const n = 300
    const socks = await openMany(srv.port, `/v1/stream/${name}?offset=now&live=${mode}`, n)
    t.after(() => socks.forEach((s) => s.destroy()))
    // Parked: the server holds one descriptor per reader (an SSE reader has
    // also had its first control event).
    const parked = await waitFor(
      () => fdCount(pid) >= baseline + n && (mode !== "sse" || socks.every((s) => s.received > 0)),
      10_000,
    )
    assert.ok(parked, `expected ${n} parked readers; server fds ${fdCount(pid)}, baseline ${baseline}`)

    // Half of them reset the connection (RST), half close it (FIN).
    socks.forEach((s, i) => (i % 2 ? s.resetAndDestroy() : s.end()))
    const t0 = Date.now()
    const back = await waitFor(() => fdCount(pid) <= baseline + 2, 3_000)
    const after = fdCount(pid)
    assert.ok(back, `server fds ${after} 3 s after ${n} parked ${mode} readers went away; baseline ${baseline}`)
    t.diagnostic(`${n} vanished ${mode} readers released in ${Date.now() - t0} ms (fds ${baseline} -> ${baseline + n} -> ${after})`)

    // The server still serves, and a live reader still wakes.
    const lp = request(srv.url, `/v1/stream/${name}?offset=now&live=long-poll`)
    await sleep(100)
    await append(srv.url, name, "more")
    const res = await lp
    assert.equal(res.status, 200)
    assert.equal(res.text, "more")
  })
}

// ---- catch-up reads in one response --------------------------------------------

import path from "node:path"
import { spawn } from "node:child_process"
import { PARLEY_BIN } from "./lib/server.mjs"

const MiB = 1 << 20

/** Deterministic bytes: position i holds (i * 7 + seed) & 255. */
function pattern(start, len, seed = 0) {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = ((start + i) * 7 + seed) & 255
  return b
}

async function appendOk(srv, name, body, ct) {
  const res = await append(srv.url, name, body, ct)
  assert.equal(res.status, 204, `append to ${name}: ${res.status} ${res.text}`)
  return res
}

test("readers - a 3 MiB byte stream is read with one GET, up to date, with ETag and 304", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const name = "readers/bytes3"
  const ct = "application/octet-stream"
  assert.equal((await createStream(srv.url, name, ct)).status, 201)
  const all = pattern(0, 3 * MiB)
  for (let off = 0; off < all.length; off += 768 * 1024) await appendOk(srv, name, all.subarray(off, off + 768 * 1024), ct)

  const res = await request(srv.url, `/v1/stream/${name}?offset=-1`, { timeoutMs: 30_000 })
  assert.equal(res.status, 200)
  assert.equal(res.body.length, all.length, "one GET returns the whole stream")
  assert.ok(res.body.equals(all))
  assert.equal(res.headers["stream-up-to-date"], "true")
  assert.equal(res.headers["stream-next-offset"], `0000000000000000_${String(all.length).padStart(16, "0")}`)
  assert.equal(Number(res.headers["content-length"]), all.length)
  // From inside an append, too.
  const mid = await request(srv.url, `/v1/stream/${name}?offset=0000000000000000_${String(1000001).padStart(16, "0")}`)
  assert.ok(mid.body.equals(all.subarray(1000001)))
  // ETag / 304 still hold for the one response.
  const again = await request(srv.url, `/v1/stream/${name}?offset=-1`, { headers: { "If-None-Match": res.headers.etag } })
  assert.equal(again.status, 304)
})

test("readers - a 3 MiB JSON stream is read with one GET, framed across windows", { timeout: 60_000 }, async (t) => {
  // A small window makes every message boundary and chunk cut happen.
  const srv = await startServer({ t, args: ["--read-window", "16384"] })
  const name = "readers/json3"
  const ct = "application/json"
  assert.equal((await createStream(srv.url, name, ct)).status, 201)
  const msgs = []
  let size = 0
  let seq = 0
  while (size < 3 * MiB) {
    const batch = []
    for (let k = 0; k < 40; k++) {
      const m = { seq: seq++, text: "x".repeat(200 + ((seq * 37) % 3000)), nested: { a: [1, "two", null] } }
      batch.push(m)
      size += JSON.stringify(m).length
    }
    msgs.push(...batch)
    await appendOk(srv, name, JSON.stringify(batch), ct)
  }
  const res = await request(srv.url, `/v1/stream/${name}?offset=-1`, { timeoutMs: 30_000 })
  assert.equal(res.status, 200)
  assert.ok(res.body.length > 3 * MiB)
  const got = JSON.parse(res.text)
  assert.equal(got.length, msgs.length, "one GET returns every message")
  assert.deepEqual(got, msgs)
  assert.equal(res.headers["stream-up-to-date"], "true")
  // From inside an append (a sliced first chunk).
  const from = msgs.length - 1234
  const part = await request(srv.url, `/v1/stream/${name}?offset=0000000000000000_${String(from).padStart(16, "0")}`)
  assert.deepEqual(JSON.parse(part.text), msgs.slice(from))
})

test("readers - a fork chain is read with one GET: each fork reads its source's prefix", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  for (const [ct, mk, join] of [
    ["application/octet-stream", (i) => pattern(i * MiB, MiB, 3), (parts) => Buffer.concat(parts)],
    ["application/json", (i) => JSON.stringify(Array.from({ length: 1500 }, (_, k) => ({ f: i, k, pad: "y".repeat(680) }))), null],
  ]) {
    const json = ct === "application/json"
    const names = [`readers/chain-${json ? "j" : "b"}0`]
    assert.equal((await createStream(srv.url, names[0], ct)).status, 201)
    const expected = []
    await appendOk(srv, names[0], mk(0), ct)
    expected.push(mk(0))
    for (let i = 1; i < 3; i++) {
      names.push(`readers/chain-${json ? "j" : "b"}${i}`)
      const res = await createStream(srv.url, names[i], ct, { "Stream-Forked-From": `/v1/stream/${names[i - 1]}` })
      assert.equal(res.status, 201, `fork ${i}: ${res.status} ${res.text}`)
      await appendOk(srv, names[i], mk(i), ct)
      expected.push(mk(i))
    }
    const res = await request(srv.url, `/v1/stream/${names[2]}?offset=-1`, { timeoutMs: 30_000 })
    assert.equal(res.status, 200)
    if (json) {
      const want = expected.flatMap((s) => JSON.parse(s))
      const got = JSON.parse(res.text)
      assert.equal(got.length, want.length)
      assert.deepEqual(got, want)
    } else {
      assert.equal(res.body.length, 3 * MiB)
      assert.ok(res.body.equals(join(expected)))
    }
    assert.equal(res.headers["stream-up-to-date"], "true")
  }
})

// ---- readers that stop reading ---------------------------------------------------

/** parley_slowreaders, built beside the server binary. */
const SLOWREADERS = path.join(path.dirname(PARLEY_BIN), "parley_slowreaders")

/**
 * Start COUNT readers of path that stop reading once their response started
 * (with serial, each one started before the next connects).
 */
async function slowReaders(port, p, count, serial = false) {
  const child = spawn(SLOWREADERS, [String(port), p, String(count), ...(serial ? ["serial"] : [])], { stdio: ["pipe", "pipe", "pipe"] })
  let out = ""
  let err = ""
  child.stdout.on("data", (b) => (out += b))
  child.stderr.on("data", (b) => (err += b))
  const until = async (re, ms) => {
    const end = Date.now() + ms
    while (!re.test(out)) {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`slow readers: ${err || "no " + re}`)
      await sleep(50)
    }
  }
  await until(/^ready$/m, 60_000)
  return {
    /** Read every connection to its end: [{status, clen, body, how}]. */
    async drain() {
      child.stdin.write("drain\n")
      await until(/^done$/m, 120_000)
      return out
        .split("\n")
        .filter((l) => /^\d+ /.test(l))
        .map((l) => {
          const [status, clen, body, how] = l.split(" ")
          return { status: Number(status), clen: Number(clen), body: Number(body), how }
        })
    },
    close() {
      child.stdin.end()
      child.kill()
    },
  }
}

/**
 * Bytes the kernel queues on the server's side of its established
 * connections on port (tx_queue of /proc/net/tcp and tcp6), one per
 * connection.
 */
function serverSendQueues(port) {
  const out = []
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = ""
    try {
      text = fs.readFileSync(f, "utf8")
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length < 5 || cols[3] !== "01") continue // ESTABLISHED only
      if (parseInt(cols[1].split(":")[1], 16) !== port) continue
      out.push(parseInt(cols[4].split(":")[0], 16))
    }
  }
  return out
}

test("readers - 1,000 readers that never read an 8 MiB stream add less than 64 MiB of RSS and 32 MiB of send queues", { timeout: 120_000 }, async (t) => {
  const srv = await startServer({ t })
  // AddressSanitizer's allocator (quarantine, redzones) makes RSS say
  // nothing about the server's own memory.
  if (/libasan|libtsan/.test(fs.readFileSync(`/proc/${srv.proc.pid}/maps`, "utf8"))) {
    t.skip("RSS is not meaningful on a sanitizer build")
    return
  }
  const name = "readers/rss"
  const ct = "application/octet-stream"
  assert.equal((await createStream(srv.url, name, ct)).status, 201)
  await appendOk(srv, name, pattern(0, 8 * MiB), ct)
  const pid = srv.proc.pid
  // Warm up: each worker's store connection, and a few whole reads.
  for (let i = 0; i < 4; i++) assert.equal((await request(srv.url, `/v1/stream/${name}?offset=-1`)).body.length, 8 * MiB)
  await sleep(300)
  const before = statusKiB(pid, "VmRSS")
  const readers = await slowReaders(srv.port, `/v1/stream/${name}?offset=-1`, 1000)
  t.after(() => readers.close())
  await sleep(2500) // the budget's sweep runs four times a second
  const after = statusKiB(pid, "VmRSS")
  const added = (after - before) / 1024
  // What a reader's window hands to the kernel is memory too (it used to be
  // megabytes per reader, out of the budget's sight).
  const queued = serverSendQueues(srv.port).reduce((a, b) => a + b, 0) / MiB
  t.diagnostic(
    `VmRSS ${before} kB -> ${after} kB with 1,000 non-reading readers: +${added.toFixed(1)} MiB, ` +
      `and ${queued.toFixed(1)} MiB in the kernel's send queues`,
  )
  assert.ok(added < 64, `1,000 non-reading readers added ${added.toFixed(1)} MiB of RSS`)
  assert.ok(queued < 32, `1,000 non-reading readers left ${queued.toFixed(1)} MiB in the kernel's send queues`)
  // The server still serves a reader that does read.
  const res = await request(srv.url, `/v1/stream/${name}?offset=-1`, { timeoutMs: 30_000 })
  assert.equal(res.body.length, 8 * MiB)
})

test("readers - slow consumers over their share are disconnected and resume by offset", { timeout: 120_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--read-budget", "1048576", "--read-window", "262144"] })
  const name = "readers/slow"
  const ct = "application/octet-stream"
  assert.equal((await createStream(srv.url, name, ct)).status, 201)
  const all = pattern(0, 4 * MiB, 11)
  await appendOk(srv, name, all, ct)

  // 64 readers that stop reading, opened one after the other: the k-th
  // window is sized while k readers read, min(256 KiB, 1 MiB / k), so
  // together they are granted about 3.7 MiB, far more than the budget.
  const n = 64
  const readers = await slowReaders(srv.port, `/v1/stream/${name}?offset=-1`, n, true)
  t.after(() => readers.close())
  // What a stalled reader was granted stays in its window, where the budget
  // sees it: the kernel does not take megabytes of it into the socket's
  // send buffer (on loopback that buffer grows to 4 MiB per connection, and
  // the readers then seemed to hold almost nothing).
  // On a slow build the sweep may already have cut the first readers (they
  // were idle for over a second while the last ones connected): measure the
  // ones still connected.
  const queues = serverSendQueues(srv.port)
  assert.ok(queues.length > 0, "no stalled reader is connected to measure")
  const deepest = Math.max(...queues)
  t.diagnostic(`deepest kernel send queue of ${queues.length} stalled readers: ${deepest} bytes`)
  assert.ok(deepest < 256 * 1024, `the kernel queues ${deepest} bytes for a reader that does not read`)
  // Meanwhile a reader that keeps reading is served completely.
  const ok = await request(srv.url, `/v1/stream/${name}?offset=-1`, { timeoutMs: 60_000 })
  assert.ok(ok.body.equals(all))
  // The sweep runs four times a second and cuts readers idle for a second;
  // wait for its log line rather than a fixed time (a loaded machine is slow).
  const cutLine = /disconnected \d+ readers? that stopped reading/
  const seen = await waitFor(() => cutLine.test(srv.stderr()), 30_000, 100)
  assert.ok(seen, `no slow reader was disconnected within 30 s; server log:\n${srv.stderr()}`)
  const results = await readers.drain()
  assert.equal(results.length, n)
  const cut = results.filter((r) => r.body < r.clen)
  assert.ok(cut.length > 0, "some slow readers were disconnected")
  for (const r of results) {
    assert.equal(r.status, 200)
    assert.equal(r.clen, all.length)
    assert.ok(r.body === r.clen || r.how !== "timeout", `a reader neither completed nor was disconnected: ${JSON.stringify(r)}`)
  }
  // A disconnected reader resumes from what it got and ends with every byte.
  const r = cut[0]
  const rest = await request(srv.url, `/v1/stream/${name}?offset=0000000000000000_${String(r.body).padStart(16, "0")}`, { timeoutMs: 60_000 })
  assert.equal(rest.status, 200)
  assert.ok(rest.body.equals(all.subarray(r.body)))
})

// ---- what an idle live reader costs ------------------------------------------

import http from "node:http"
import { sseParser } from "./lib/api.mjs"

/** An SSE reader through node's HTTP client (chunked decoding); records its events. */
function sseReader(port, path) {
  const sub = { events: [], status: 0 }
  sub.req = http.request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
    sub.status = res.statusCode
    res.setEncoding("utf8")
    res.on("data", sseParser((ev) => sub.events.push(ev)))
    res.on("error", () => {})
  })
  sub.req.on("error", () => {})
  sub.req.end()
  return sub
}

test("readers - 2,000 idle SSE readers cost under 8 KiB of server memory each, and still get every event whole", { timeout: 120_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--sse-recycle", "120000"] })
  // AddressSanitizer's allocator (quarantine, redzones) makes RSS say
  // nothing about the server's own memory.
  if (/libasan|libtsan/.test(fs.readFileSync(`/proc/${srv.proc.pid}/maps`, "utf8"))) {
    t.skip("RSS is not meaningful on a sanitizer build")
    return
  }
  const name = "readers/idle"
  const live = `/v1/stream/${name}?offset=now&live=sse`
  assert.equal((await createStream(srv.url, name)).status, 201)
  const pid = srv.proc.pid
  // Warm up: readers come and go, so every worker has served one.
  const warm = await openMany(srv.port, live, 200)
  assert.ok(await waitFor(() => warm.every((s) => s.received > 0), 10_000), "the warm-up readers got their control event")
  warm.forEach((s) => s.destroy())
  await waitFor(() => fdCount(pid) < 100, 5_000)
  await sleep(500)

  const before = statusKiB(pid, "VmRSS")
  const n = 2000
  const watched = Array.from({ length: 20 }, () => sseReader(srv.port, live))
  const socks = await openMany(srv.port, live, n - watched.length)
  t.after(() => {
    socks.forEach((s) => s.destroy())
    watched.forEach((w) => w.req.destroy())
  })
  const ready = await waitFor(
    () => socks.every((s) => s.received > 0) && watched.every((w) => w.events.some((e) => e.type === "control")),
    30_000,
  )
  assert.ok(ready, "every reader got its first control event")
  await sleep(1000)
  const after = statusKiB(pid, "VmRSS")
  const per = (after - before) / n
  t.diagnostic(`VmRSS ${before} kB -> ${after} kB with ${n} idle SSE readers: ${per.toFixed(2)} KiB each`)
  assert.ok(per < 8, `${n} idle SSE readers cost ${per.toFixed(2)} KiB of RSS each (PERFORMANCE.md W6: at most 8)`)

  // Their memory given back, they still get every event whole: a small
  // one, one far larger than the connection's buffer, a small one again.
  const big = "b".repeat(100_000)
  for (const body of ["first", big, "last"]) assert.equal((await append(srv.url, name, body)).status, 204)
  const datas = (w) => w.events.filter((e) => e.type === "data").map((e) => e.data)
  const all = await waitFor(() => watched.every((w) => datas(w).join("") === "first" + big + "last"), 20_000)
  const bad = watched.find((w) => datas(w).join("") !== "first" + big + "last")
  assert.ok(all, `a reader got ${bad && JSON.stringify(datas(bad).map((d) => d.length))} bytes of data events`)
  const want = Buffer.byteLength("first" + big + "last")
  const counted = await waitFor(() => socks.every((s) => s.received > want), 20_000)
  assert.ok(counted, "every raw reader received the three events")
})

test("readers - an HTTP/1.0 SSE reader gets its events unchunked, until the connection closes", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--sse-recycle", "2000"] })
  const name = "readers/http10"
  assert.equal((await createStream(srv.url, name)).status, 201)
  const text = await new Promise((resolve, reject) => {
    let got = ""
    const sock = net.connect({ host: "127.0.0.1", port: srv.port }, () =>
      sock.write(`GET /v1/stream/${name}?offset=now&live=sse HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`),
    )
    sock.setEncoding("utf8")
    let appended = false
    sock.on("data", async (d) => {
      got += d
      if (!appended && got.includes("event: control")) {
        appended = true
        for (const body of ["one", "x".repeat(5000)]) await append(srv.url, name, body)
      }
    })
    sock.on("end", () => resolve(got))
    sock.on("error", reject)
  })
  const head = text.slice(0, text.indexOf("\r\n\r\n"))
  assert.match(head, /^HTTP\/1\.[01] 200/)
  assert.doesNotMatch(head, /transfer-encoding/i)
  const events = []
  sseParser((ev) => events.push(ev))(text.slice(head.length + 4))
  const data = events.filter((e) => e.type === "data").map((e) => e.data)
  assert.equal(data.join(""), "one" + "x".repeat(5000))
})
