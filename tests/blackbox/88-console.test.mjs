// The web console's files at /console: embedded in the binary, served
// without a token (they hold no data) with their content types, an ETag
// (304 on a match), a strict Content-Security-Policy that forbids inline
// script and style and framing, and nosniff; local mode's Host and Origin
// rules apply to them as to every route. /console/config.json tells the
// page whether to ask for a token. What the page does is tested in a real
// browser (clients/js/test-browser/console.test.mjs).
import assert from "node:assert/strict"
import { test } from "node:test"

import { expectError } from "./lib/api.mjs"
import { request } from "./lib/http.mjs"
import { startServer } from "./lib/server.mjs"

const FILES = [
  ["/console", "text/html; charset=utf-8", /<script src="\/console\/console.js" defer><\/script>/],
  ["/console/", "text/html; charset=utf-8", /<link rel="stylesheet" href="\/console\/console.css">/],
  ["/console/console.js", "text/javascript; charset=utf-8", /\/v1\/conversations/],
  ["/console/console.css", "text/css; charset=utf-8", /box-sizing/],
]

function checkPolicy(res, what) {
  const csp = res.headers["content-security-policy"] ?? ""
  assert.match(csp, /(^|; )default-src 'self'(;|$)/, `${what}: ${csp}`)
  assert.match(csp, /(^|; )script-src 'self'(;|$)/, `${what}: ${csp}`)
  assert.match(csp, /(^|; )style-src 'self'(;|$)/, `${what}: ${csp}`)
  assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/, `${what}: ${csp}`)
  // Images: this origin, data: and the object URLs of blobs fetched with the token; nothing else.
  assert.match(csp, /(^|; )img-src 'self' data: blob:(;|$)/, `${what}: ${csp}`)
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `${what}: ${csp}`)
  assert.equal(res.headers["x-content-type-options"], "nosniff", what)
  assert.equal(res.headers["x-frame-options"], "DENY", what)
}

test("console - its files: content types, CSP, nosniff, ETag and 304, without a token on a server that needs one", async (t) => {
  const srv = await startServer({ t, args: ["--admin-key", "console-admin-1"] })
  const seen = new Set()
  for (const [path, type, body] of FILES) {
    const res = await request(srv.url, path)
    assert.equal(res.status, 200, `${path}: ${res.text.slice(0, 200)}`)
    assert.equal(res.headers["content-type"], type, path)
    assert.match(res.text, body, path)
    checkPolicy(res, path)
    const etag = res.headers.etag
    assert.match(etag ?? "", /^"[0-9a-f]{16}"$/, path)
    seen.add(etag)
    const again = await request(srv.url, path, { headers: { "If-None-Match": etag } })
    assert.equal(again.status, 304, `${path} If-None-Match`)
    assert.equal(again.body.length, 0)
    const stale = await request(srv.url, path, { headers: { "If-None-Match": '"0000000000000000"' } })
    assert.equal(stale.status, 200, `${path} stale ETag`)
    const head = await request(srv.url, path, { method: "HEAD" })
    assert.equal(head.status, 200, `${path} HEAD`)
    assert.equal(head.headers.etag, etag)
  }
  assert.equal(seen.size, 3, "one ETag per file (/console and /console/ are the same page)")
  // No inline script or style in the page: the CSP would block it.
  const page = (await request(srv.url, "/console")).text
  assert.doesNotMatch(page, /<script>|<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i)

  const cfg = await request(srv.url, "/console/config.json")
  assert.equal(cfg.status, 200)
  assert.deepEqual(cfg.json(), { auth: "token" })
  expectError(await request(srv.url, "/console/nope.js"), 404, "not_found")
  expectError(await request(srv.url, "/console/../metrics"), 404, "not_found")
  const post = await request(srv.url, "/console", { method: "POST", body: "{}" })
  expectError(post, 405, "method_not_allowed")
  assert.equal(post.headers.allow, "GET, HEAD")
  // The API behind it still wants the token.
  expectError(await request(srv.url, "/v1/conversations"), 401, "unauthorized")
})

test("console - local mode: config says no token; a foreign Host is 421 and a foreign Origin 403, the server's own origin is served", async (t) => {
  const srv = await startServer({ t })
  const cfg = await request(srv.url, "/console/config.json")
  assert.deepEqual(cfg.json(), { auth: "none" })
  expectError(await request(srv.url, "/console", { headers: { Host: "evil.example" } }), 421, "misdirected_request")
  expectError(await request(srv.url, "/console/console.js", { headers: { Origin: "http://evil.example" } }), 403, "cross_origin_refused")
  const own = new URL(srv.url).host
  const res = await request(srv.url, "/console/console.js", { headers: { Origin: `http://${own}` } })
  assert.equal(res.status, 200)
})
