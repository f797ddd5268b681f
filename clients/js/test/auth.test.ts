// Authentication: a token provider is asked again after a 401 and the
// request retried once with the new token.
import assert from "node:assert/strict"
import { test } from "node:test"

import { ParleyError } from "../src/index.js"
import { createClient, mintJwt, startServer } from "./lib/server.js"

const SECRET = "sdk-test-secret-1"

test("auth - an expired token is refreshed once after a 401 and the write goes through once", async (t) => {
  const srv = await startServer(t, ["--admin-key", "sdk-admin-1", "--jwt-secret", SECRET])
  const asked: boolean[] = []
  const provider = async ({ refresh }: { refresh: boolean }) => {
    asked.push(refresh)
    // The app's cached token has expired; a refresh gets a fresh one.
    return refresh ? mintJwt("alice", SECRET, 3600) : mintJwt("alice", SECRET, -60)
  }
  const c = createClient({ baseUrl: srv.url, token: provider, outbox: "memory" })
  const conv = await c.conversations.create({ title: "with refresh" })
  assert.equal(conv.owner, "alice")
  assert.deepEqual(asked, [false, true])
  // The fresh token is kept: no more provider calls.
  await c.conversations.get(conv.id)
  assert.deepEqual(asked, [false, true])
  const page = await c.conversations.list()
  assert.equal(page.items.length, 1)
  c.close()
})

test("auth - a provider that keeps giving a bad token gets a 401 error after one refresh", async (t) => {
  const srv = await startServer(t, ["--admin-key", "sdk-admin-2", "--jwt-secret", SECRET])
  let calls = 0
  const c = createClient({ baseUrl: srv.url, token: () => (calls++, mintJwt("alice", "wrong-secret")), outbox: "memory" })
  await assert.rejects(c.conversations.list(), (e: unknown) => e instanceof ParleyError && e.status === 401)
  assert.equal(calls, 2)
  // A static string token is not refreshed.
  const s = createClient({ baseUrl: srv.url, token: "not-a-token", outbox: "memory" })
  await assert.rejects(s.conversations.list(), (e: unknown) => e instanceof ParleyError && e.status === 401)
  c.close()
  s.close()
})
