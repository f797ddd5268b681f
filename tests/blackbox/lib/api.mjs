// Helpers for the black-box tests of the API around the streams: signing
// user tokens, authenticated JSON requests, error-body checks, the event
// feed, and an SSE reader.
import assert from "node:assert/strict"
import crypto from "node:crypto"
import http from "node:http"

import { request } from "./http.mjs"

// ---------------------------------------------------------------------------
// Tokens

function b64url(value) {
  const buf = Buffer.isBuffer(value) ? value : Buffer.from(typeof value === "string" ? value : JSON.stringify(value))
  return buf.toString("base64url")
}

const HMAC = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }

/**
 * Sign a JWT. opts.alg: HS256 (default), HS384, HS512 or "none" (empty
 * signature); opts.header replaces the whole header; opts.hashAlg signs with
 * another HMAC than the header says.
 */
export function signJwt(payload, secret, opts = {}) {
  const alg = opts.alg ?? "HS256"
  const header = opts.header ?? { alg, typ: "JWT" }
  const signingInput = `${b64url(header)}.${b64url(payload)}`
  if (alg === "none" && !opts.hashAlg) return `${signingInput}.`
  const hash = opts.hashAlg ?? HMAC[alg]
  if (!hash) throw new Error(`signJwt: no HMAC for ${alg}`)
  return `${signingInput}.${crypto.createHmac(hash, secret).update(signingInput).digest("base64url")}`
}

/** Seconds since the epoch, as JWT claims count time. */
export function nowSeconds() {
  return Math.floor(Date.now() / 1000)
}

/** A valid HS256 user token for sub, good for an hour. */
export function userToken(sub, secret, extra = {}) {
  return signJwt({ sub, iat: nowSeconds(), exp: nowSeconds() + 3600, ...extra }, secret)
}

// ---------------------------------------------------------------------------
// Requests

/**
 * A client bound to a server URL and a bearer token (null: no Authorization
 * header). call(method, path, { json, body, headers, agent, timeoutMs }):
 * json is serialised with Content-Type application/json.
 * The server object may be restarted: the URL is read at every call.
 */
export function client(srv, token, defaults = {}) {
  const base = () => (typeof srv === "string" ? srv : srv.url)
  const call = (method, path, opts = {}) => {
    const headers = { ...(defaults.headers ?? {}), ...(opts.headers ?? {}) }
    if (token) headers.Authorization = `Bearer ${token}`
    let body = opts.body
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json)
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
        headers["Content-Type"] = method === "PATCH" ? "application/merge-patch+json" : "application/json"
    }
    return request(base(), path, { method, headers, body, agent: opts.agent, timeoutMs: opts.timeoutMs })
  }
  return {
    token,
    call,
    get: (path, opts) => call("GET", path, opts),
    head: (path, opts) => call("HEAD", path, opts),
    put: (path, json, opts = {}) => call("PUT", path, { ...opts, json }),
    post: (path, json, opts = {}) => call("POST", path, { ...opts, json }),
    patch: (path, json, opts = {}) => call("PATCH", path, { ...opts, json }),
    del: (path, opts) => call("DELETE", path, opts),
  }
}

/** "METHOD path: status body" for assertion messages. */
export function describe(res, what = "") {
  const text = res.text.length > 600 ? `${res.text.slice(0, 600)}...` : res.text
  return `${what}${what ? ": " : ""}${res.status} ${text}`
}

/** Assert a status; returns the parsed JSON body when there is one. */
export function expectStatus(res, status, what = "") {
  assert.equal(res.status, status, describe(res, what))
  if (res.body.length && /^application\/json/.test(res.headers["content-type"] ?? "")) return res.json()
  return undefined
}

/**
 * Assert an error response: status, JSON content type, the error envelope
 * {"error":{"code","message","details"}} with the given code. Returns the
 * error object.
 */
export function expectError(res, status, code, what = "") {
  assert.equal(res.status, status, describe(res, what))
  assert.match(res.headers["content-type"] ?? "", /^application\/json/, `${what}: content type of the error`)
  let body
  try {
    body = res.json()
  } catch {
    assert.fail(`${what}: the error body is not JSON: ${res.text}`)
  }
  assert.equal(typeof body.error, "object", `${what}: no error object in ${res.text}`)
  assert.ok(body.error !== null, `${what}: error is null`)
  if (code) assert.equal(body.error.code, code, `${what}: error code in ${res.text}`)
  assert.match(body.error.code, /^[a-z][a-z0-9_]*$/, `${what}: error.code is snake_case`)
  assert.equal(typeof body.error.message, "string", `${what}: error.message`)
  assert.ok(body.error.message.length > 0, `${what}: empty error.message`)
  assert.equal(typeof body.error.details, "object", `${what}: error.details is an object`)
  assert.ok(body.error.details !== null && !Array.isArray(body.error.details), `${what}: error.details is an object`)
  return body.error
}

/** RFC 3339 UTC with milliseconds. */
export const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

// ---------------------------------------------------------------------------
// Documents

/** Every item of a collection, following next_cursor (limit per page). */
export async function listAll(c, collection, limit = 100) {
  const items = []
  let cursor = null
  for (let page = 0; page < 1000; page++) {
    const q = `limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`
    const res = await c.get(`/v1/documents/${collection}?${q}`)
    const body = expectStatus(res, 200, `list ${collection}`)
    items.push(...body.items)
    if (body.next_cursor === null) return items
    cursor = body.next_cursor
  }
  throw new Error(`listAll: more than 1000 pages in ${collection}`)
}

/** JSON with object keys sorted at every level, compact. */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  if (value !== null && typeof value === "object")
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`)
      .join(",")}}`
  return JSON.stringify(value)
}

export function sha256Hex(text) {
  return crypto.createHash("sha256").update(text, "utf8").digest("hex")
}

// ---------------------------------------------------------------------------
// The event feed

/** Read the caller's feed from offset: { events, next, res }. */
export async function readEvents(c, offset = "-1") {
  const res = await c.get(`/v1/events?offset=${offset}`)
  const events = expectStatus(res, 200, `GET /v1/events?offset=${offset}`)
  assert.ok(Array.isArray(events), `the event feed answers a JSON array: ${res.text}`)
  const next = res.headers["stream-next-offset"]
  assert.match(next ?? "", /^\d{16}_\d{16}$/, "Stream-Next-Offset of the event feed")
  return { events, next, res }
}

// ---------------------------------------------------------------------------
// SSE

/**
 * Open an SSE connection: port, path, headers. Returns
 * { events: [{type, data}], status, close(), waitFor(pred, ms, what) }.
 * waitFor resolves once pred(sub) is true (checked on every event).
 */
export function openSse(port, path, headers = {}) {
  const sub = { events: [], status: 0, error: null, ended: false }
  const waiters = new Set()
  const check = () => {
    for (const w of [...waiters]) {
      let ok = false
      try {
        ok = w.pred(sub)
      } catch (err) {
        waiters.delete(w)
        w.reject(err)
        continue
      }
      if (ok) {
        waiters.delete(w)
        w.resolve()
      } else if (sub.error || sub.ended) {
        waiters.delete(w)
        w.reject(new Error(`${w.what}: the SSE connection ended (${sub.error?.message ?? `status ${sub.status}`})`))
      }
    }
  }
  const req = http.request(
    { host: "127.0.0.1", port, path, agent: false, headers: { Accept: "text/event-stream", ...headers } },
    (res) => {
      sub.status = res.statusCode
      sub.headers = res.headers
      res.setEncoding("utf8")
      const feed = sseParser((ev) => sub.events.push(ev))
      res.on("data", (chunk) => {
        feed(chunk)
        check()
      })
      res.on("end", () => {
        sub.ended = true
        check()
      })
      res.on("error", (err) => {
        sub.error = err
        check()
      })
      check()
    },
  )
  req.on("error", (err) => {
    sub.error = err
    check()
  })
  req.end()
  sub.close = () => req.destroy()
  sub.waitFor = (pred, ms, what) =>
    new Promise((resolve, reject) => {
      const w = { pred, what, resolve, reject }
      const timer = setTimeout(() => {
        waiters.delete(w)
        reject(new Error(`${what}: not within ${ms} ms; events so far: ${JSON.stringify(sub.events).slice(0, 1500)}`))
      }, ms)
      w.resolve = () => {
        clearTimeout(timer)
        resolve()
      }
      w.reject = (err) => {
        clearTimeout(timer)
        reject(err)
      }
      waiters.add(w)
      check()
    })
  /** The JSON messages of every data event so far, flattened. */
  sub.messages = () => {
    const out = []
    for (const ev of sub.events) {
      if (ev.type !== "data") continue
      const v = JSON.parse(ev.data)
      if (Array.isArray(v)) out.push(...v)
      else out.push(v)
    }
    return out
  }
  return sub
}

/** Sleep. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * An SSE frame parser: returns feed(chunk), which calls onEvent({type,
 * data}) for every complete event (data lines joined with "\n"; comments
 * skipped; CRLF and CR line ends accepted).
 */
export function sseParser(onEvent) {
  let buf = ""
  return (chunk) => {
    buf += chunk.replace(/\r\n?/g, "\n")
    let end
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      let type = "message"
      const data = []
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue
        const colon = line.indexOf(":")
        const field = colon < 0 ? line : line.slice(0, colon)
        let value = colon < 0 ? "" : line.slice(colon + 1)
        if (value.startsWith(" ")) value = value.slice(1)
        if (field === "event") type = value
        else if (field === "data") data.push(value)
      }
      if (data.length || type !== "message") onEvent({ type, data: data.join("\n") })
    }
  }
}
