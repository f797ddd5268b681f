// test/conformance/adapter.ts — this SDK behind the Durable Streams client
// conformance suite's JSON-lines adapter protocol: the runner writes one
// command per line on stdin, the adapter answers one result per line on
// stdout (see test/conformance/README.md for how to run it against parley).
//
// What goes through the SDK and what does not:
//   - every read is the SDK's own code: a catch-up read is
//     client.readPage(), a live read (long-poll, SSE, auto) is a
//     client.subscribe() Subscription, batch by batch, with its offsets,
//     up-to-date and closed flags, retries and reconnects. The SDK is made
//     for JSON streams; a text stream's body or SSE data event comes out
//     as one string item, which is what the adapter reports;
//   - appends of one JSON value to a JSON stream without producer or
//     Stream-Seq headers are client.write() (the outbox: one
//     Idempotency-Key per append);
//   - the rest is plain HTTP here, because the SDK has no call for it: it
//     writes JSON streams only, it has no HEAD, DELETE or close of a raw
//     stream, and its producer headers live in the worker loop, not in a
//     general producer (idempotent-* commands answer NOT_SUPPORTED).
// The features it announces follow from that: SSE, long-poll and auto,
// no client-side batching, no per-request dynamic headers. A successful
// append or delete answers status 200 whatever the server's 2xx was (204
// for an append), as the suite's own adapter does: the suite checks the
// client's view (it worked), not the wire.
import readline from "node:readline"

import { createClient, type ParleyClient } from "../../src/index.js"
import type { Batch } from "../../src/live.js"
import { ParleyError } from "../../src/transport.js"

type Cmd = Record<string, any> & { type: string }
type Result = Record<string, any>

let base = "" // the server's origin
let prefix = "" // the path before a stream's name (parley: /v1/stream)
let client: ParleyClient | null = null
const contentTypes = new Map<string, string>() // stream path → its content type

const isJson = (ct: string | undefined) => /application\/json/i.test(ct ?? "")

function error(commandType: string, errorCode: string, message: string, status?: number): Result {
  return { type: "error", success: false, commandType, status, errorCode, message }
}

/** The suite's error code for an HTTP failure. */
function codeOf(status: number, message: string, closed: boolean): string {
  if (status === 404) return "NOT_FOUND"
  if (status === 409) return closed ? "STREAM_CLOSED" : /seq/i.test(message) ? "SEQUENCE_CONFLICT" : "CONFLICT"
  if (status === 400) return /offset/i.test(message) ? "INVALID_OFFSET" : "INVALID_ARGUMENT"
  if (status === 403) return "FORBIDDEN"
  return "UNEXPECTED_STATUS"
}

function fromError(commandType: string, e: unknown): Result {
  if (e instanceof ParleyError) {
    if (e.status === 0) return error(commandType, "NETWORK_ERROR", e.message)
    const closed = e.code === "stream_closed" || /closed/i.test(e.message)
    return error(commandType, codeOf(e.status, `${e.code} ${e.message}`, closed), e.message, e.status)
  }
  if (e instanceof SyntaxError) return error(commandType, "PARSE_ERROR", e.message)
  return error(commandType, "INTERNAL_ERROR", String((e as Error)?.message ?? e))
}

/** Plain HTTP, for what the SDK has no call for. */
async function http(method: string, path: string, headers: Record<string, string> = {}, body?: string | Uint8Array) {
  return fetch(`${base}${prefix}${path}`, { method, headers, body: body as BodyInit | undefined })
}

async function httpFailure(commandType: string, res: Response): Promise<Result> {
  const text = await res.text()
  let message = text
  try {
    message = JSON.parse(text)?.error?.message ?? text
  } catch {
    // not JSON
  }
  return error(commandType, codeOf(res.status, message, res.headers.get("stream-closed") === "true"), message || `HTTP ${res.status}`, res.status)
}

const tail = (res: Response) => res.headers.get("stream-next-offset") ?? undefined

async function head(path: string) {
  const res = await http("HEAD", path)
  return res.ok ? { offset: tail(res), contentType: res.headers.get("content-type") ?? undefined, closed: res.headers.get("stream-closed") === "true" } : null
}

function bodyOf(c: Cmd): string | Uint8Array | undefined {
  if (c.data === undefined) return undefined
  return c.binary ? Buffer.from(c.data, "base64") : c.data
}

async function create(c: Cmd): Promise<Result> {
  const ct = c.contentType ?? "application/octet-stream"
  const h: Record<string, string> = { "Content-Type": ct, ...c.headers }
  if (c.ttlSeconds !== undefined) h["Stream-TTL"] = String(c.ttlSeconds)
  if (c.expiresAt !== undefined) h["Stream-Expires-At"] = c.expiresAt
  if (c.closed) h["Stream-Closed"] = "true"
  const res = await http("PUT", c.path, h, bodyOf(c))
  if (!res.ok) return httpFailure("create", res)
  await res.arrayBuffer()
  contentTypes.set(c.path, ct)
  return { type: "create", success: true, status: res.status, offset: tail(res) ?? (await head(c.path))?.offset }
}

async function append(c: Cmd): Promise<Result> {
  const ct = contentTypes.get(c.path) ?? (await head(c.path))?.contentType ?? "application/octet-stream"
  const producer = c.producerId !== undefined
  if (isJson(ct) && !producer && c.seq === undefined && !c.headers && !c.binary) {
    // The SDK's write: through the outbox, with an Idempotency-Key.
    let value: unknown
    try {
      value = JSON.parse(c.data)
    } catch (e) {
      return error("append", "PARSE_ERROR", String(e))
    }
    try {
      const a = await client!.write("POST", `${prefix}${c.path}`, value)
      return { type: "append", success: true, status: 200, offset: a.headers.get("stream-next-offset") ?? undefined }
    } catch (e) {
      return fromError("append", e)
    }
  }
  const h: Record<string, string> = { "Content-Type": ct, ...c.headers }
  if (c.seq !== undefined) h["Stream-Seq"] = String(c.seq)
  if (producer) {
    h["Producer-Id"] = c.producerId
    h["Producer-Epoch"] = String(c.producerEpoch ?? 0)
    h["Producer-Seq"] = String(c.producerSeq ?? 0)
  }
  const res = await http("POST", c.path, h, bodyOf(c))
  const num = (name: string) => (res.headers.get(name) === null ? undefined : Number(res.headers.get(name)))
  if (!res.ok) {
    const r = await httpFailure("append", res)
    if (res.status === 403) r.producerEpoch = num("producer-epoch")
    if (res.status === 409 && res.headers.get("producer-expected-seq") !== null) {
      r.errorCode = "SEQUENCE_CONFLICT"
      r.producerExpectedSeq = num("producer-expected-seq")
      r.producerReceivedSeq = num("producer-received-seq")
    }
    return r
  }
  await res.arrayBuffer()
  return { type: "append", success: true, status: 200, offset: tail(res), duplicate: res.status === 204 && producer, producerEpoch: num("producer-epoch"), producerSeq: num("producer-seq") }
}

/** A read through the SDK: catch-up (readPage) or live (a Subscription). */
async function read(c: Cmd): Promise<Result> {
  let ct = contentTypes.get(c.path)
  if (ct === undefined) {
    const h = await head(c.path)
    if (!h) return error("read", "NOT_FOUND", `no stream at ${c.path}`, 404)
    ct = h.contentType
  }
  // A JSON stream's batch is its items; any other stream's is its text
  // (the SDK hands a body or an SSE data event that is not JSON over as
  // one string item).
  const json = isJson(ct)
  const dataOf = (items: unknown[]) => (json ? JSON.stringify(items) : items.map((i) => (typeof i === "string" ? i : JSON.stringify(i))).join(""))
  const path = `${prefix}${c.path}`
  const offset = c.offset ?? "-1"
  const chunks: { data: string; offset: string }[] = []
  const timeoutMs = c.timeoutMs ?? 5000
  if (!c.live) {
    try {
      const b = await client!.readPage(path, offset)
      if (b.items.length) chunks.push({ data: dataOf(b.items), offset: b.offset })
      return { type: "read", success: true, status: 200, chunks, offset: b.offset, upToDate: b.upToDate, streamClosed: b.closed }
    } catch (e) {
      return fromError("read", e)
    }
  }
  const live = c.live === "sse" ? "sse" : c.live === "long-poll" ? "long-poll" : "auto"
  const stop = new AbortController()
  const sub = client!.subscribe(path, { offset, live, shared: false, signal: stop.signal } as any)
  const maxChunks = c.maxChunks ?? 100
  let last: Batch | null = null
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    stop.abort()
  }, timeoutMs)
  try {
    for await (const b of sub.batches()) {
      last = b
      if (b.items.length) chunks.push({ data: dataOf(b.items), offset: b.offset })
      if (chunks.length >= maxChunks || (c.waitForUpToDate && b.upToDate) || b.closed) break
    }
  } catch (e) {
    if (!timedOut) {
      clearTimeout(timer)
      sub.close()
      return fromError("read", e)
    }
  }
  clearTimeout(timer)
  sub.close()
  return {
    type: "read",
    success: true,
    // A long-poll that ended without data was the server's 204.
    status: live === "long-poll" && chunks.length === 0 && !last?.closed ? 204 : 200,
    chunks,
    offset: last?.offset ?? sub.offset,
    upToDate: timedOut ? true : (last?.upToDate ?? false),
    streamClosed: last?.closed ?? false,
  }
}

async function handle(c: Cmd): Promise<Result> {
  switch (c.type) {
    case "init": {
      const u = new URL(c.serverUrl)
      base = u.origin
      prefix = u.pathname.replace(/\/$/, "")
      client?.close()
      client = createClient({ baseUrl: base, outbox: "memory", tabs: false })
      contentTypes.clear()
      return {
        type: "init",
        success: true,
        clientName: "@parley/client",
        clientVersion: "0.1.0",
        features: { batching: false, sse: true, longPoll: true, auto: true, streaming: true, dynamicHeaders: false },
      }
    }
    case "create":
      return create(c)
    case "connect": {
      const h = await head(c.path)
      if (!h) return error("connect", "NOT_FOUND", `no stream at ${c.path}`, 404)
      if (h.contentType) contentTypes.set(c.path, h.contentType)
      return { type: "connect", success: true, status: 200, offset: h.offset }
    }
    case "append":
      return append(c)
    case "read":
      return read(c)
    case "head": {
      const res = await http("HEAD", c.path, c.headers)
      if (!res.ok) return error("head", codeOf(res.status, "", false), `HEAD ${c.path}: HTTP ${res.status}`, res.status)
      const ttl = res.headers.get("stream-ttl")
      return {
        type: "head",
        success: true,
        status: res.status,
        offset: tail(res),
        contentType: res.headers.get("content-type") ?? undefined,
        ttlSeconds: ttl === null ? undefined : Number(ttl),
        expiresAt: res.headers.get("stream-expires-at") ?? undefined,
        streamClosed: res.headers.get("stream-closed") === "true",
      }
    }
    case "delete": {
      const res = await http("DELETE", c.path, c.headers)
      if (!res.ok) return httpFailure("delete", res)
      contentTypes.delete(c.path)
      return { type: "delete", success: true, status: 200 }
    }
    case "close": {
      const ct = c.contentType ?? contentTypes.get(c.path) ?? "application/octet-stream"
      const res = await http("POST", c.path, { "Stream-Closed": "true", ...(c.data !== undefined ? { "Content-Type": ct } : {}) }, c.data)
      if (!res.ok) return httpFailure("close", res)
      await res.arrayBuffer()
      return { type: "close", success: true, finalOffset: tail(res) ?? "" }
    }
    case "shutdown":
      client?.close()
      return { type: "shutdown", success: true }
    default:
      return error(c.type, "NOT_SUPPORTED", `${c.type}: the SDK has no such call`)
  }
}

const rl = readline.createInterface({ input: process.stdin })
// One command at a time, in order: the runner waits for each answer.
let queue = Promise.resolve()
rl.on("line", (line) => {
  if (!line.trim()) return
  queue = queue.then(async () => {
    let c: Cmd
    try {
      c = JSON.parse(line)
    } catch (e) {
      process.stdout.write(`${JSON.stringify(error("init", "PARSE_ERROR", String(e)))}\n`)
      return
    }
    let r: Result
    try {
      r = await handle(c)
    } catch (e) {
      r = fromError(c.type, e)
    }
    process.stdout.write(`${JSON.stringify(r)}\n`)
    if (c.type === "shutdown") {
      rl.close()
      process.exit(0)
    }
  })
})
