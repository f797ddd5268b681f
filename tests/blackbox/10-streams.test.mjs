// Streams: durability across restarts and crashes, graceful shutdown under
// load, request framing, and hostile paths and offsets.
import assert from "node:assert/strict"
import http from "node:http"
import { test } from "node:test"

import { append, createStream, offsetAt, positionOf, readAll, request } from "./lib/http.mjs"
import { startServer } from "./lib/server.mjs"

function is2xx(status) {
  return status >= 200 && status < 300
}

async function mustCreate(url, name, type = "text/plain") {
  const res = await createStream(url, name, type)
  assert.equal(res.status, 201, `PUT /v1/stream/${name}: ${res.status} ${res.text}`)
}

async function mustAppend(url, name, body, type = "text/plain", headers = {}) {
  const res = await append(url, name, body, type, { headers })
  assert.ok(is2xx(res.status), `POST /v1/stream/${name}: ${res.status} ${res.text}`)
  return res
}

/** Everything a client can observe about a stream without live reads. */
async function observe(url, name) {
  const get = await readAll(url, name)
  assert.equal(get.status, 200, `GET /v1/stream/${name}?offset=-1: ${get.status} ${get.text}`)
  const head = await request(url, `/v1/stream/${name}`, { method: "HEAD" })
  assert.equal(head.status, 200, `HEAD /v1/stream/${name}: ${head.status}`)
  return {
    body: get.body.toString("base64"),
    contentType: get.headers["content-type"],
    tail: get.headers["stream-next-offset"],
    closed: get.headers["stream-closed"] === "true",
    headContentType: head.headers["content-type"],
    headTail: head.headers["stream-next-offset"],
    headClosed: head.headers["stream-closed"] === "true",
  }
}

test("streams - restart keeps every stream", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  const url = srv.url

  await mustCreate(url, "restart/text")
  for (const part of ["alpha ", "beta ", "gamma\n", "δέλτα ✓"]) await mustAppend(url, "restart/text", part)

  await mustCreate(url, "restart/json", "application/json")
  for (const v of [{ n: 1 }, { n: 2, s: "two" }, [1, 2, 3], "a string", null])
    await mustAppend(url, "restart/json", JSON.stringify(v), "application/json")

  await mustCreate(url, "restart/binary", "application/octet-stream")
  const bytes = Buffer.alloc(256)
  for (let i = 0; i < 256; i++) bytes[i] = i
  await mustAppend(url, "restart/binary", bytes, "application/octet-stream")

  await mustCreate(url, "restart/closed")
  await mustAppend(url, "restart/closed", "last words")
  await mustAppend(url, "restart/closed", "", "text/plain", { "Stream-Closed": "true" })

  await mustCreate(url, "restart/empty")

  const names = ["restart/text", "restart/json", "restart/binary", "restart/closed", "restart/empty"]
  const before = {}
  for (const name of names) before[name] = await observe(url, name)

  // What was written is what is read, before any restart.
  assert.equal(Buffer.from(before["restart/text"].body, "base64").toString(), "alpha beta gamma\nδέλτα ✓")
  assert.equal(Buffer.from(before["restart/binary"].body, "base64").compare(bytes), 0)
  assert.equal(before["restart/closed"].closed, true)
  assert.equal(before["restart/text"].closed, false)
  assert.match(before["restart/json"].contentType, /^application\/json/)

  assert.equal(await srv.stop(), 0, `exit code after SIGTERM; stderr: ${srv.stderr()}`)
  await srv.restart()

  for (const name of names) {
    const after = await observe(srv.url, name)
    assert.deepEqual(after, before[name], `stream ${name} changed across a restart`)
  }
  // A closed stream stays closed: appends are refused.
  const res = await append(srv.url, "restart/closed", "more")
  assert.equal(res.status, 409, `append to a closed stream after restart: ${res.status} ${res.text}`)
})

test("streams - kill -9 right after a 2xx keeps that write", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  await mustCreate(srv.url, "crash/log")
  const rounds = 20
  let expected = ""
  for (let i = 0; i < rounds; i++) {
    const body = `write-${i};`
    // SIGKILL the moment the status line arrives, before even reading the
    // rest of the response.
    const status = await new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: srv.port,
          method: "POST",
          path: "/v1/stream/crash/log",
          headers: { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) },
          agent: false,
        },
        (res) => {
          if (is2xx(res.statusCode)) srv.proc.kill("SIGKILL")
          res.resume()
          resolve(res.statusCode)
        },
      )
      req.setTimeout(10_000, () => req.destroy(new Error("append timed out")))
      req.on("error", reject)
      req.end(body)
    })
    assert.ok(is2xx(status), `round ${i}: append answered ${status}`)
    expected += body
    await srv.kill9()
    await srv.restart()
    const got = await readAll(srv.url, "crash/log")
    assert.equal(got.status, 200, `round ${i}: read after restart: ${got.status} ${got.text}`)
    assert.equal(got.text, expected, `round ${i}: acknowledged writes missing or duplicated after kill -9`)
    assert.equal(positionOf(got.headers["stream-next-offset"]), Buffer.byteLength(expected))
  }
})

test("streams - SIGTERM during a burst of appends answers every accepted request", { timeout: 60_000 }, async (t) => {
  const srv = await startServer({ t })
  await mustCreate(srv.url, "burst/log")
  const total = 500
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  t.after(() => agent.destroy())

  const outcomes = new Array(total) // { status } | { error }
  let acked = 0
  let settled = 0
  let signalled = false
  const signalAfter = 25 // acknowledged appends before SIGTERM
  let inFlightAtSignal = -1
  const requests = []
  for (let i = 0; i < total; i++) {
    const body = `item-${i};`
    requests.push(
      append(srv.url, "burst/log", body, "text/plain", { agent, timeoutMs: 20_000 }).then(
        (res) => {
          outcomes[i] = { status: res.status, text: res.text }
          if (is2xx(res.status)) acked++
          settled++
          if (!signalled && acked >= signalAfter) {
            signalled = true
            inFlightAtSignal = total - settled
            srv.proc.kill("SIGTERM")
          }
        },
        (err) => {
          outcomes[i] = { error: err.code ?? err.message }
          settled++
        },
      ),
    )
  }
  await Promise.all(requests)
  const code = await srv.stop()
  assert.ok(signalled, "no append was acknowledged before the signal")
  assert.ok(inFlightAtSignal > 0, "every append had finished before SIGTERM; nothing was in flight")
  assert.equal(code, 0, `exit code after SIGTERM; stderr: ${srv.stderr()}`)

  const okErrors = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "socket hang up"])
  const unexpected = []
  for (let i = 0; i < total; i++) {
    const o = outcomes[i]
    if (o.status !== undefined) {
      if (!is2xx(o.status) && o.status !== 503) unexpected.push(`item-${i}: ${o.status} ${o.text}`)
    } else if (!okErrors.has(o.error)) {
      unexpected.push(`item-${i}: ${o.error}`)
    }
  }
  assert.deepEqual(unexpected, [], "answers other than 2xx, 503 or a connection error")

  await srv.restart()
  const got = await readAll(srv.url, "burst/log")
  assert.equal(got.status, 200)
  const items = got.text.split(";")
  assert.equal(items.pop(), "", `the log ends mid-item: ${JSON.stringify(got.text.slice(-40))}`)
  const seen = new Map()
  for (const item of items) seen.set(item, (seen.get(item) ?? 0) + 1)
  const dup = [...seen].filter(([, n]) => n > 1).map(([k]) => k)
  assert.deepEqual(dup, [], "items stored more than once")
  const unknown = items.filter((s) => !/^item-\d+$/.test(s) || Number(s.slice(5)) >= total)
  assert.deepEqual(unknown, [], "items that were never sent")
  const lost = []
  for (let i = 0; i < total; i++) if (is2xx(outcomes[i].status ?? 0) && !seen.has(`item-${i}`)) lost.push(i)
  assert.deepEqual(lost, [], `acknowledged appends missing after restart (${acked} acknowledged)`)
  const kinds = new Map()
  for (const o of outcomes) {
    const k = o.status !== undefined ? String(o.status) : o.error
    kinds.set(k, (kinds.get(k) ?? 0) + 1)
  }
  t.diagnostic(
    `${inFlightAtSignal} in flight at SIGTERM; answers: ${[...kinds].map(([k, n]) => `${k}=${n}`).join(", ")}; ` +
      `${items.length} stored`,
  )
})

test("streams - chunked request body is accepted", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  await mustCreate(srv.url, "chunked/text")
  await mustCreate(srv.url, "chunked/json", "application/json")

  const sendChunked = (name, type, chunks) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: srv.port,
          method: "POST",
          path: `/v1/stream/${name}`,
          headers: { "Content-Type": type, "Transfer-Encoding": "chunked" },
          agent: false,
        },
        (res) => {
          let text = ""
          res.setEncoding("utf8")
          res.on("data", (d) => (text += d))
          res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }))
        },
      )
      req.setTimeout(10_000, () => req.destroy(new Error("chunked append timed out")))
      req.on("error", reject)
      req.flushHeaders()
      // Write the chunks with pauses so they reach the server separately.
      ;(async () => {
        for (const c of chunks) {
          req.write(c)
          await new Promise((r) => setTimeout(r, 20))
        }
        req.end()
      })()
    })

  const parts = ["first chunk, ", "second chunk, ", "x".repeat(70_000), " and the end"]
  const res = await sendChunked("chunked/text", "text/plain", parts)
  assert.ok(is2xx(res.status), `chunked POST: ${res.status} ${res.text}`)
  const expected = parts.join("")
  assert.equal(positionOf(res.headers["stream-next-offset"]), Buffer.byteLength(expected))
  const got = await readAll(srv.url, "chunked/text")
  assert.equal(got.text, expected)

  // A JSON value split across chunks.
  const jres = await sendChunked("chunked/json", "application/json", ['{"a":', '[1,2,', '3],"b":"c"}'])
  assert.ok(is2xx(jres.status), `chunked JSON POST: ${jres.status} ${jres.text}`)
  const jgot = await readAll(srv.url, "chunked/json")
  assert.deepEqual(jgot.json(), [{ a: [1, 2, 3], b: "c" }])
})

test("streams - path traversal and empty segments are 400", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  await mustCreate(srv.url, "a")
  const bad = [
    "/v1/stream/a/../b",
    "/v1/stream/a/./b",
    "/v1/stream/../b",
    "/v1/stream/a/..",
    "/v1/stream/./a",
    "/v1/stream/a//b",
    "/v1/stream//a",
    "/v1/stream/a/",
    "/v1/stream/",
    "/v1/stream/a/%2e%2e/b",
    "/v1/stream/a/%2E%2E/b",
    "/v1/stream/%2e%2e/b",
    "/v1/stream/a%2f..%2fb",
  ]
  const failures = []
  for (const path of bad) {
    for (const [method, headers, body] of [
      ["PUT", { "Content-Type": "text/plain" }, undefined],
      ["POST", { "Content-Type": "text/plain" }, "x"],
      ["GET", {}, undefined],
      ["DELETE", {}, undefined],
    ]) {
      const p = method === "GET" ? `${path}?offset=-1` : path
      const res = await request(srv.url, p, { method, headers, body })
      let code = null
      try {
        code = res.json().error?.code
      } catch {
        // not JSON
      }
      if (res.status !== 400 || typeof code !== "string") failures.push(`${method} ${p}: ${res.status} ${res.text}`)
    }
  }
  assert.deepEqual(failures, [], "hostile paths that were not a JSON 400")

  // Nothing was created or changed by them.
  for (const name of ["b", "a/b"]) {
    const res = await readAll(srv.url, name)
    assert.equal(res.status, 404, `stream ${name} should not exist: ${res.status}`)
  }
  const a = await readAll(srv.url, "a")
  assert.equal(a.status, 200)
  assert.equal(a.text, "")
  assert.equal((await request(srv.url, "/healthz")).status, 200)
})

test("streams - encoded NUL in a path is 400", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  // "a%00b" decodes to a path with a NUL byte in it. It must not be taken
  // for the stream "a" (nor any other).
  const res = await createStream(srv.url, "a%00b")
  assert.equal(res.status, 400, `PUT /v1/stream/a%00b: ${res.status}, Location: ${res.headers.location}`)
  const a = await readAll(srv.url, "a")
  assert.equal(a.status, 404, `PUT /v1/stream/a%00b created the stream "a"`)
})

test("streams - offsets from another stream / beyond the tail are 400", { timeout: 30_000 }, async (t) => {
  const srv = await startServer({ t })
  await mustCreate(srv.url, "off/short")
  await mustAppend(srv.url, "off/short", "12345")
  await mustCreate(srv.url, "off/long")
  const longRes = await mustAppend(srv.url, "off/long", "y".repeat(100))
  const longTail = longRes.headers["stream-next-offset"]
  await mustCreate(srv.url, "off/json", "application/json")
  await mustAppend(srv.url, "off/json", '{"m":1}', "application/json")

  const shortBefore = await observe(srv.url, "off/short")
  assert.equal(positionOf(shortBefore.tail), 5)

  // The tail itself is a valid offset: an empty, up-to-date read.
  const atTail = await request(srv.url, `/v1/stream/off/short?offset=${shortBefore.tail}`)
  assert.equal(atTail.status, 200)
  assert.equal(atTail.text, "")
  assert.equal(atTail.headers["stream-up-to-date"], "true")

  const cases = [
    ["off/short", longTail, "the long stream's tail"],
    ["off/short", offsetAt(6), "one past the tail"],
    ["off/short", offsetAt(9_999_999_999_999_999), "the largest position"],
    ["off/json", offsetAt(5), "a byte offset of a text stream on a JSON stream"],
    ["off/short", "0000000000000001_0000000000000000", "a non-zero reserved field"],
    ["off/short", "0000000000000000_000000000000000x", "a non-digit"],
    ["off/short", "0000000000000000_00000000000000001", "too long"],
    ["off/short", "0_5", "too short"],
    ["off/short", "-2", "a negative offset"],
    ["off/short", "later", "an unknown sentinel"],
    ["off/short", "", "an empty offset"],
  ]
  const failures = []
  for (const [name, offset, why] of cases) {
    for (const live of ["", "&live=long-poll", "&live=sse"]) {
      const p = `/v1/stream/${name}?offset=${encodeURIComponent(offset)}${live}`
      const res = await request(srv.url, p, { timeoutMs: 10_000 })
      if (res.status !== 400) failures.push(`${why}: GET ${p}: ${res.status} ${res.text.slice(0, 200)}`)
    }
  }
  assert.deepEqual(failures, [], "offsets that were not refused with 400")

  // The stream is unchanged and the server still serves it.
  assert.deepEqual(await observe(srv.url, "off/short"), shortBefore)
})

test("streams - a JSON batch is one append; reads from inside it return just the rest", async (t) => {
  const srv = await startServer({ t })
  assert.equal((await createStream(srv.url, "batch", "application/json")).status, 201)
  const res = await append(srv.url, "batch", ' [ {"n":1} , [2,3] ,"four"]\n', "application/json")
  assert.equal(res.status, 204)
  assert.equal(positionOf(res.headers["stream-next-offset"]), 3, "three messages, three positions")
  assert.equal((await append(srv.url, "batch", '{"n":5}', "application/json")).status, 204)
  const cases = [
    [0, [{ n: 1 }, [2, 3], "four", { n: 5 }]],
    [1, [[2, 3], "four", { n: 5 }]],
    [2, ["four", { n: 5 }]],
    [3, [{ n: 5 }]],
    [4, []],
  ]
  for (const [pos, want] of cases) {
    const got = await request(srv.url, `/v1/stream/batch?offset=${offsetAt(pos)}`)
    assert.equal(got.status, 200, `read from ${pos}`)
    assert.deepEqual(JSON.parse(got.body.toString()), want, `read from ${pos}`)
    assert.equal(positionOf(got.headers["stream-next-offset"]), 4)
  }
})

test("streams - once a producer closed a stream, only its closing request is answered 204; any other producer gets 409 + Stream-Closed", async (t) => {
  const srv = await startServer({ t })
  const name = "closed-by-producer"
  const producer = (id, epoch, seq) => ({ "Producer-Id": id, "Producer-Epoch": String(epoch), "Producer-Seq": String(seq) })
  const post = (headers, body) =>
    request(srv.url, `/v1/stream/${name}`, { method: "POST", headers: { "Content-Type": "text/plain", ...headers }, body })
  await mustCreate(srv.url, name)
  assert.equal((await post(producer("p1", 0, 0), "a")).status, 200)
  const closing = { ...producer("p1", 0, 1), "Stream-Closed": "true" }
  const closed = await post(closing)
  assert.equal(closed.status, 204, `p1 closes: ${closed.status} ${closed.text}`)
  const tail = closed.headers["stream-next-offset"]

  const refused = [
    ["p2 closes with seq 0", { ...producer("p2", 0, 0), "Stream-Closed": "true" }, undefined],
    ["p2 appends", producer("p2", 0, 0), "b"],
    ["p2 appends and closes", { ...producer("p2", 0, 0), "Stream-Closed": "true" }, "b"],
    ["p1 repeats seq 0", producer("p1", 0, 0), "a"],
    ["p1 closes with seq 2", { ...producer("p1", 0, 2), "Stream-Closed": "true" }, undefined],
  ]
  for (const [what, headers, body] of refused) {
    const res = await post(headers, body)
    assert.equal(res.status, 409, `${what}: ${res.status} ${res.text}`)
    assert.equal(res.headers["stream-closed"], "true", `${what}: Stream-Closed`)
    assert.equal(res.headers["stream-next-offset"], tail, `${what}: Stream-Next-Offset is the tail`)
    assert.match(res.text, /sequence/, `${what}: the message says "sequence"`)
  }
  const again = await post(closing)
  assert.equal(again.status, 204, "p1's closing request again")
  assert.equal(again.headers["stream-closed"], "true")
  assert.equal((await request(srv.url, `/v1/stream/${name}`, { method: "POST", headers: { "Stream-Closed": "true" } })).status, 204, "a bare close stays idempotent")
  assert.equal((await readAll(srv.url, name)).text, "a", "nothing else was stored")

  // A producer that skips a number is told which sequence number comes next.
  const gap = "producer-gap"
  await mustCreate(srv.url, gap)
  assert.equal((await append(srv.url, gap, "x", "text/plain", { headers: producer("g", 0, 0) })).status, 200)
  const skip = await append(srv.url, gap, "z", "text/plain", { headers: producer("g", 0, 2) })
  assert.equal(skip.status, 409)
  assert.equal(skip.headers["producer-expected-seq"], "1")
  assert.match(skip.text, /sequence/)
})
