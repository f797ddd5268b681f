// A small HTTP client for the black-box tests, on node:http so that paths go
// out exactly as written (no normalisation of "..", "//" or escapes) and
// every connection is under the test's control.
import http from "node:http"

const DEFAULT_TIMEOUT_MS = 15_000

/**
 * Send one request to `base` (the server's URL); `path` (with its query) is
 * sent verbatim. Options: method, headers, body (string | Buffer), agent
 * (default: a new connection per request), timeoutMs.
 * Resolves { status, headers, body (Buffer), text, json() }; rejects on a
 * connection error or timeout.
 */
export function request(base, path, { method = "GET", headers = {}, body, agent = false, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path, headers, agent },
      (res) => {
        const chunks = []
        res.on("data", (c) => chunks.push(c))
        res.on("end", () => {
          const buf = Buffer.concat(chunks)
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: buf,
            text: buf.toString("utf8"),
            json: () => JSON.parse(buf.toString("utf8")),
          })
        })
        res.on("error", reject)
      },
    )
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)))
    req.on("error", reject)
    if (body !== undefined) req.end(body)
    else req.end()
  })
}

/** Create a stream; asserts nothing, returns the response. */
export function createStream(base, name, contentType = "text/plain", headers = {}) {
  return request(base, `/v1/stream/${name}`, {
    method: "PUT",
    headers: { "Content-Type": contentType, ...headers },
  })
}

/** Append one body to a stream. */
export function append(base, name, body, contentType = "text/plain", opts = {}) {
  return request(base, `/v1/stream/${name}`, {
    method: "POST",
    headers: { "Content-Type": contentType, ...(opts.headers ?? {}) },
    body,
    agent: opts.agent ?? false,
    timeoutMs: opts.timeoutMs,
  })
}

/** Read a stream from the start (catch-up read). */
export function readAll(base, name) {
  return request(base, `/v1/stream/${name}?offset=-1`)
}

/** Build the wire form of an offset at position pos (test-side knowledge of the format). */
export function offsetAt(pos) {
  return `0000000000000000_${String(pos).padStart(16, "0")}`
}

/** Position of a wire offset. */
export function positionOf(offset) {
  const m = /^\d{16}_(\d{16})$/.exec(offset ?? "")
  if (!m) throw new Error(`not an offset: ${offset}`)
  return Number(m[1])
}
