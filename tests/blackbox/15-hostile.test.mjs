// Hostile input at the edge: text that is not UTF-8 anywhere in a request,
// web pages and foreign host names in local mode, ambiguous request framing
// (smuggling), bodies and headers over their limits, and the modes of the
// files that hold the server's keys. Every case gets its documented status
// and JSON error, and the server keeps serving.
import assert from "node:assert/strict"
import fs from "node:fs"
import net from "node:net"
import path from "node:path"
import { test } from "node:test"

import { client, expectError, expectStatus } from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import { TEST_PG_URL, runParley, startServer } from "./lib/server.mjs"

delete process.env.PARLEY_ADMIN_KEY
delete process.env.PARLEY_JWT_SECRET
delete process.env.PARLEY_ALLOW_ORIGIN

const ADMIN_KEY = "hostile-admin-key-3c9e"

/**
 * Send raw bytes on one connection; resolve { text, closed } once the
 * server closes it or quietMs pass without new bytes after the first.
 */
function raw(port, chunks, { quietMs = 700, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1")
    const got = []
    let closed = false
    let quiet = null
    const finish = () => {
      clearTimeout(quiet)
      clearTimeout(overall)
      sock.destroy()
      resolve({ text: Buffer.concat(got).toString("latin1"), closed })
    }
    const overall = setTimeout(finish, timeoutMs)
    sock.on("data", (d) => {
      got.push(d)
      clearTimeout(quiet)
      quiet = setTimeout(finish, quietMs)
    })
    sock.on("end", () => {
      closed = true
      finish()
    })
    sock.on("close", () => {
      closed = true
      finish()
    })
    sock.on("error", (err) => (err.code === "ECONNRESET" ? ((closed = true), finish()) : reject(err)))
    sock.on("connect", () => {
      for (const c of [chunks].flat()) sock.write(typeof c === "string" ? Buffer.from(c, "latin1") : c)
    })
  })
}

/** The status lines of every response in a raw reply. */
function statusLines(text) {
  return text.match(/^HTTP\/1\.[01] \d{3}/gm) ?? []
}

/** The JSON body of the first response in a raw reply (Content-Length framed). */
function firstJson(text) {
  const head = text.indexOf("\r\n\r\n")
  const len = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head))?.[1] ?? -1)
  assert.ok(len >= 0, `a Content-Length in ${text.slice(0, 300)}`)
  return JSON.parse(text.slice(head + 4, head + 4 + len))
}

async function stillServing(srv, what) {
  assert.ok(srv.running, `${what}: the server is still running\n${srv.stderr()}`)
  const res = await request(srv.url, "/healthz")
  assert.equal(res.status, 200, `${what}: /healthz answers`)
}

// ---------------------------------------------------------------------------
// Text that is not UTF-8

test("hostile - invalid UTF-8 in a stream path is 400 and the server keeps serving", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  for (const p of ["/v1/stream/a%C3%28", "/v1/stream/%FF", "/v1/stream/a/%ED%A0%80", "/v1/stream/%C0%AF"]) {
    const res = await request(srv.url, p, { method: "PUT", headers: { "Content-Type": "text/plain" } })
    expectError(res, 400, "invalid_text", `PUT ${p}`)
    await stillServing(srv, `after PUT ${p}`)
  }
  const ok = await request(srv.url, "/v1/stream/%C3%A9t%C3%A9", { method: "PUT", headers: { "Content-Type": "text/plain" } })
  assert.equal(ok.status, 201, "a path in valid UTF-8 (été) is served")
  await stillServing(srv, "at the end")
})

test("hostile - invalid UTF-8 in header and query values is 400 wherever it is", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const bad = "a\xc3(" // sent as latin1 bytes: 61 C3 28
  await request(srv.url, "/v1/stream/h", { method: "PUT", headers: { "Content-Type": "text/plain" } })
  const cases = [
    ["POST", "/v1/stream/h", { "Content-Type": "text/plain", "Producer-Id": bad, "Producer-Epoch": "0", "Producer-Seq": "0" }],
    ["POST", "/v1/stream/h", { "Content-Type": "text/plain", "Stream-Seq": bad }],
    ["PUT", "/v1/stream/h2", { "Content-Type": `text/${bad}` }],
    ["POST", "/v1/conversations", { "Content-Type": "application/json", "Idempotency-Key": bad }],
    ["POST", "/v1/conversations", { "Content-Type": "application/json", "Parley-User": bad }],
    ["GET", "/v1/conversations", { "X-Anything": bad }],
    ["GET", "/v1/conversations", { "X-Control": "a\x01b" }],
  ]
  for (const [method, p, headers] of cases) {
    const res = await raw(srv.port, [
      `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("") +
        (method === "GET" ? "" : "Content-Length: 2\r\n") +
        "\r\n" +
        (method === "GET" ? "" : "{}"),
    ])
    assert.deepEqual(statusLines(res.text), ["HTTP/1.1 400"], `${method} ${p} ${JSON.stringify(headers)}: ${res.text.slice(0, 300)}`)
    assert.equal(firstJson(res.text).error.code, "invalid_text")
  }
  for (const q of ["/v1/stream/h?offset=%C3%28", "/v1/conversations?cursor=%FF", "/v1/conversations?%FF=1"]) {
    expectError(await request(srv.url, q), 400, "invalid_text", `GET ${q}`)
  }
  for (const p of ["/v1/documents/c%FF/id", "/v1/documents/notes/%C3%28", "/v1/conversations/%FF"]) {
    expectError(await client(srv, null).put(p, { x: 1 }), 400, "invalid_text", `PUT ${p}`)
  }
  // A JSON body that is not UTF-8 is the parser's 400.
  const body = Buffer.from('{"title":"a\xc3("}', "latin1")
  const res = await request(srv.url, "/v1/conversations", { method: "POST", headers: { "Content-Type": "application/json" }, body })
  expectError(res, 400, null, "a JSON body with invalid UTF-8")
  await stillServing(srv, "after every case")
  // Nothing was written by any of them.
  const list = expectStatus(await request(srv.url, "/v1/conversations"), 200, "list")
  assert.equal(list.items.length, 0)
})

test("hostile - an unknown subscription member with multi-byte characters is a 400 naming it, not 503", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const name = "a" + "é".repeat(40) // byte 64 falls inside an é
  const res = await request(srv.url, "/v1/stream/__ds/subscriptions/sub1/callback", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer some-token" },
    body: JSON.stringify({ [name]: 1 }),
  })
  assert.equal(res.status, 400, res.text)
  const err = res.json().error
  assert.equal(err.code, "INVALID_REQUEST")
  assert.ok(err.message.includes("a" + "é".repeat(31) + '"'), `the name is cut on a character boundary: ${err.message}`)
  await stillServing(srv, "after the callback")
})

// ---------------------------------------------------------------------------
// Local mode: loopback Host names only, no foreign web pages

test("hostile - local mode answers 421 to a foreign Host and 403 to a foreign Origin, and writes nothing", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  const put = (name, headers) => request(srv.url, `/v1/stream/${name}`, { method: "PUT", headers: { "Content-Type": "text/plain", ...headers } })
  for (const host of ["evil.example", `evil.example:${srv.port}`, "127.0.0.1.evil.example", "localhost.evil.example", "[::2]:1", "10.0.0.1"]) {
    const res = await put("h1", { Host: host })
    expectError(res, 421, "misdirected_request", `Host: ${host}`)
    assert.equal(res.headers["access-control-allow-origin"], undefined)
  }
  for (const host of ["localhost", `localhost:${srv.port}`, "LOCALHOST:1", `127.0.0.1:${srv.port}`, "127.9.8.7", `[::1]:${srv.port}`, "[::1]"]) {
    const res = await request(srv.url, "/healthz", { headers: { Host: host } })
    assert.equal(res.status, 200, `Host: ${host} is loopback`)
  }
  // A page on another origin: refused, no CORS headers, nothing written.
  const evil = { Origin: "https://evil.example" }
  const res = await put("e1", evil)
  expectError(res, 403, "cross_origin_refused", "a foreign Origin")
  assert.equal(res.headers["access-control-allow-origin"], undefined)
  const form = await request(srv.url, "/v1/stream/e1", { method: "POST", headers: { ...evil, "Content-Type": "text/plain" }, body: "x" })
  expectError(form, 403, "cross_origin_refused", "a form post from a foreign page")
  assert.equal((await request(srv.url, "/v1/stream/e1?offset=-1")).status, 404, "nothing was created")
  const pre = await request(srv.url, "/v1/stream/e1", {
    method: "OPTIONS",
    headers: { ...evil, "Access-Control-Request-Method": "DELETE", "Access-Control-Request-Headers": "x-anything" },
  })
  expectError(pre, 403, "cross_origin_refused", "a preflight from a foreign page")
  assert.equal(pre.headers["access-control-allow-methods"], undefined)
  // Another local port is another origin; "null" (a sandboxed page) too.
  for (const origin of ["http://localhost:3000", "null", `http://127.0.0.1:${srv.port}.evil.example`]) {
    expectError(await put("e2", { Origin: origin }), 403, "cross_origin_refused", `Origin: ${origin}`)
  }
  // The server's own origin, and a request without Origin, are served.
  const own = await put("own", { Origin: `http://127.0.0.1:${srv.port}` })
  assert.equal(own.status, 201, own.text)
  assert.equal((await put("plain", {})).status, 201)
})

test("hostile - --allow-origin (and PARLEY_ALLOW_ORIGIN) lets exactly the named pages in", { timeout: 30_000 }, async (t) => {
  const front = "http://localhost:5173"
  const srv = await startServer({ t, args: ["--allow-origin", front, "--allow-origin", "https://app.example"] })
  const res = await request(srv.url, "/v1/stream/a", { method: "PUT", headers: { Origin: front, "Content-Type": "text/plain" } })
  assert.equal(res.status, 201, res.text)
  assert.equal(res.headers["access-control-allow-origin"], front)
  assert.match(res.headers.vary ?? "", /Origin/)
  const pre = await request(srv.url, "/v1/stream/a", {
    method: "OPTIONS",
    headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
  })
  assert.equal(pre.status, 204)
  assert.equal(pre.headers["access-control-allow-origin"], "https://app.example")
  expectError(
    await request(srv.url, "/v1/stream/a", { headers: { Origin: "http://localhost:5174" } }),
    403,
    "cross_origin_refused",
    "an origin not named",
  )
  // From the environment, as a comma-separated list.
  const env = await startServer({ t, env: { PARLEY_ALLOW_ORIGIN: "http://localhost:1234, http://localhost:5678" } })
  const e = await request(env.url, "/healthz", { headers: { Origin: "http://localhost:5678" } })
  assert.equal(e.status, 200)
  assert.equal(e.headers["access-control-allow-origin"], "http://localhost:5678")
  // Values that are not an origin are refused at start-up.
  for (const bad of ["localhost:5173", "http://localhost:5173/", "*", "http://a/b", "ftp://x"]) {
    const run = await runParley(["serve", "--listen", "127.0.0.1:0", "--data", fs.mkdtempSync(path.join(env.dataDir, "x")), "--allow-origin", bad])
    assert.equal(run.code, 2, `--allow-origin ${bad}: ${run.stderr}`)
    assert.match(run.stderr, /allow-origin/)
  }
})

test("hostile - with auth configured any origin and host may call, CORS as the protocol needs", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--admin-key", ADMIN_KEY] })
  const res = await request(srv.url, "/v1/stream/x", {
    method: "PUT",
    headers: { Origin: "https://evil.example", Host: "parley.example", Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "text/plain" },
  })
  assert.equal(res.status, 201, res.text)
  assert.equal(res.headers["access-control-allow-origin"], "*")
  const pre = await request(srv.url, "/v1/stream/x", {
    method: "OPTIONS",
    headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "if-none-match" },
  })
  assert.equal(pre.status, 204)
  assert.match(pre.headers["access-control-allow-headers"] ?? "", /if-none-match/i)
})

// ---------------------------------------------------------------------------
// Request smuggling (RFC 9112 6.1, 6.3)

test("hostile - Content-Length with Transfer-Encoding is 400 and closes; the request behind it is not served", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  await request(srv.url, "/v1/stream/s", { method: "PUT", headers: { "Content-Type": "text/plain" } })
  const smuggled = "PUT /v1/stream/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"
  const cases = [
    ["CL + TE", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_framing"],
    ["TE + CL", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "bad_framing"],
    ["two Content-Lengths", "Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello", 400, "bad_framing"],
    ["unknown transfer coding", "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "unsupported_transfer_encoding"],
    ["two Transfer-Encodings", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, "unsupported_transfer_encoding"],
  ]
  for (const [what, rest, status, code] of cases) {
    const res = await raw(srv.port, `POST /v1/stream/s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n${rest}${smuggled}`)
    const lines = statusLines(res.text)
    assert.equal(lines.length, 1, `${what}: one response only, the pipelined one is not served: ${res.text}`)
    assert.equal(lines[0], `HTTP/1.1 ${status}`, `${what}: ${res.text.slice(0, 400)}`)
    if (code) assert.equal(firstJson(res.text).error.code, code, what)
    assert.ok(res.closed, `${what}: the connection is closed`)
  }
  // A Content-Length that is not a number is refused by libmicrohttpd
  // itself, before Parley sees the request: its own HTML 400, then close
  // (the one framing error that does not get a JSON body; see README).
  const list = await raw(srv.port, `POST /v1/stream/s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0, 5\r\n\r\nhello${smuggled}`)
  assert.ok(statusLines(list.text).every((l) => l === "HTTP/1.1 400"), list.text)
  assert.ok(list.closed, "Content-Length list: closed")
  assert.equal((await request(srv.url, "/v1/stream/smuggled?offset=-1")).status, 404, "the smuggled request never ran")
  // Identical Content-Length values are one length (RFC 9112 6.3).
  const same = await raw(srv.port, "POST /v1/stream/s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
  assert.deepEqual(statusLines(same.text), ["HTTP/1.1 204"], same.text)
  await stillServing(srv, "after the smuggling attempts")
})

// ---------------------------------------------------------------------------
// Bodies and headers over their limits

test("hostile - a chunked body past four times the limit closes the connection at once", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t, args: ["--max-append-bytes", "1024"] })
  await request(srv.url, "/v1/stream/c", { method: "PUT", headers: { "Content-Type": "text/plain" } })
  // Over the limit but under four times it: drained, then a JSON 413.
  const chunk = (n) => `${n.toString(16)}\r\n${"x".repeat(n)}\r\n`
  const small = await raw(srv.port, [`POST /v1/stream/c HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n`, chunk(3000), "0\r\n\r\n"])
  assert.deepEqual(statusLines(small.text), ["HTTP/1.1 413"], small.text)
  assert.equal(firstJson(small.text).error.code, "payload_too_large")
  // Far over: the server hangs up while the client is still sending
  // (the body never ends: without the close the request would hang).
  const sock = net.connect(srv.port, "127.0.0.1")
  await new Promise((resolve) => sock.on("connect", resolve))
  let closed = false
  sock.on("close", () => (closed = true))
  sock.on("error", () => (closed = true))
  sock.write(`POST /v1/stream/c HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n`)
  for (let i = 0; i < 16 && !closed; i++) {
    sock.write(chunk(1024))
    await new Promise((r) => setTimeout(r, 50))
  }
  const deadline = Date.now() + 3000
  while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  sock.destroy()
  assert.ok(closed, "the connection was closed after about 4 KiB of a body limited to 1 KiB")
  // Nothing was appended.
  const read = await request(srv.url, "/v1/stream/c?offset=-1")
  assert.equal(read.body.length, 0)
  await stillServing(srv, "after the chunked bodies")
})

test("hostile - request headers over 8 KiB get a JSON 431; under it they are served", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  // The request line and headers together: 8,192 bytes is the limit (see
  // README: what an idle SSE connection costs is set by it).
  const ok = await raw(srv.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"a".repeat(8_000)}\r\nConnection: close\r\n\r\n`)
  assert.deepEqual(statusLines(ok.text), ["HTTP/1.1 200"], ok.text.slice(0, 300))
  for (const size of [8_300, 9_000, 9_600]) {
    const res = await raw(srv.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"a".repeat(size)}\r\n\r\n`)
    assert.deepEqual(statusLines(res.text), ["HTTP/1.1 431"], `${size} bytes of headers: ${res.text.slice(0, 300)}`)
    assert.match(res.text, /\r\ncontent-type: application\/json/i, `${size}: a JSON error`)
    assert.equal(firstJson(res.text).error.code, "headers_too_large")
    assert.ok(res.closed, `${size}: the connection is closed`)
  }
  // A long request line counts the same way.
  const url = await raw(srv.port, `GET /healthz?q=${"a".repeat(8_500)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
  assert.deepEqual(statusLines(url.text), ["HTTP/1.1 431"], url.text.slice(0, 300))
  assert.equal(firstJson(url.text).error.code, "headers_too_large")
  // Beyond libmicrohttpd's per-connection memory (10 KiB) it answers 431
  // itself, with its own HTML page (see README), and closes.
  const huge = await raw(srv.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${"a".repeat(100_000)}\r\n\r\n`)
  assert.deepEqual(statusLines(huge.text), ["HTTP/1.1 431"], huge.text.slice(0, 300))
  // Many small headers count the same way.
  const many = Array.from({ length: 600 }, (_, i) => `X-H${i}: ${"v".repeat(30)}\r\n`).join("")
  const res = await raw(srv.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${many}\r\n`)
  assert.deepEqual(statusLines(res.text), ["HTTP/1.1 431"], res.text.slice(0, 300))
  await stillServing(srv, "after the large headers")
})

// ---------------------------------------------------------------------------
// Files

test("hostile - the data directory is 0700 and its files 0600 whatever the umask", { timeout: 30_000, skip: TEST_PG_URL ? "SQLite only: the files are the SQLite store's" : false }, async (t) => {
  const old = process.umask(0o022)
  let srv
  try {
    const parent = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "parley-modes-"))
    t.after(() => fs.rmSync(parent, { recursive: true, force: true }))
    srv = await startServer({ t, dataDir: path.join(parent, "data") })
  } finally {
    process.umask(old)
  }
  await request(srv.url, "/v1/stream/m", { method: "PUT", headers: { "Content-Type": "text/plain" } })
  const mode = (p) => fs.statSync(p).mode & 0o777
  assert.equal(mode(srv.dataDir).toString(8), "700", "the data directory")
  const files = fs.readdirSync(srv.dataDir)
  for (const f of ["parley.db", "parley.db-wal", "parley.db-shm", "parley.lock"]) assert.ok(files.includes(f), `${f} exists: ${files}`)
  for (const f of files) assert.equal(mode(path.join(srv.dataDir, f)).toString(8), "600", f)
  // An existing store with looser modes is tightened at start.
  await srv.stop()
  fs.chmodSync(path.join(srv.dataDir, "parley.db"), 0o644)
  await srv.start()
  assert.equal(mode(path.join(srv.dataDir, "parley.db")).toString(8), "600", "tightened on start")
})
