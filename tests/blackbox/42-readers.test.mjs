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
