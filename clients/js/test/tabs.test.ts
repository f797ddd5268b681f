// Cross-tab sharing with injected fakes: a lock manager with the Web Locks
// semantics, an in-process BroadcastChannel bus, and a fake stream whose
// live connections are counted. One connection at a time; every tab sees
// every item once, in order; when the leader's tab closes another takes
// over; the channel-only election (no Web Locks) converges on one leader.
import assert from "node:assert/strict"
import { test } from "node:test"

import { type Batch, type ChannelLike, type LockManagerLike, sharedSource, Subscription, subjectOf } from "../src/index.js"
import { mintJwt, sleep, until } from "./lib/server.js"

const fmt = (n: number) => `0000000000000000_${String(n).padStart(16, "0")}`
const pos = (offset: string, tail: number) => (offset === "-1" ? 0 : offset === "now" ? tail : Number(offset.split("_")[1]))

/** A JSON stream in memory; counts live connections. */
class FakeStream {
  items: number[] = []
  active = 0
  maxActive = 0
  opened = 0
  private waiters = new Set<() => void>()
  append(...xs: number[]) {
    this.items.push(...xs)
    for (const w of [...this.waiters]) w()
  }
  direct = (offset: string, signal: AbortSignal): AsyncIterable<Batch<number>> => {
    const self = this
    return (async function* () {
      self.opened++
      self.active++
      self.maxActive = Math.max(self.maxActive, self.active)
      try {
        let at = pos(offset, self.items.length)
        while (!signal.aborted) {
          if (at < self.items.length) {
            const items = self.items.slice(at)
            const b = { items, from: fmt(at), offset: fmt(self.items.length), upToDate: true, closed: false }
            at = self.items.length
            yield b
            continue
          }
          await new Promise<void>((r) => {
            const w = () => {
              self.waiters.delete(w)
              r()
            }
            self.waiters.add(w)
            signal.addEventListener("abort", w, { once: true })
          })
        }
      } finally {
        self.active--
      }
    })()
  }
  catchUp = async (offset: string): Promise<Batch<number>> => {
    const at = pos(offset, this.items.length)
    return { items: this.items.slice(at), from: offset, offset: fmt(this.items.length), upToDate: true, closed: false }
  }
}

/** Web Locks semantics: one holder per name, a FIFO of waiters, abortable while waiting. */
class FakeLocks implements LockManagerLike {
  private held = new Set<string>()
  private queues = new Map<string, Array<() => void>>()
  async request(name: string, options: { signal?: AbortSignal }, cb: (lock: unknown) => Promise<unknown>) {
    if (this.held.has(name)) {
      await new Promise<void>((resolve, reject) => {
        const q = this.queues.get(name) ?? []
        this.queues.set(name, q)
        const go = () => resolve()
        q.push(go)
        options.signal?.addEventListener("abort", () => {
          const i = q.indexOf(go)
          if (i >= 0) {
            q.splice(i, 1)
            reject(new Error("AbortError"))
          }
        })
      })
    }
    this.held.add(name)
    try {
      return await cb({ name })
    } finally {
      this.held.delete(name)
      this.queues.get(name)?.shift()?.()
    }
  }
}

/** BroadcastChannel semantics: delivered asynchronously to every other open channel of the name. */
class FakeBus {
  private chans = new Set<{ name: string; c: ChannelLike }>()
  channel = (name: string): ChannelLike => {
    const bus = this
    const entry = { name, c: null as unknown as ChannelLike }
    const c: ChannelLike = {
      onmessage: null,
      postMessage(msg) {
        const data = structuredClone(msg)
        for (const o of bus.chans) if (o !== entry && o.name === name) setTimeout(() => o.c.onmessage?.({ data }), 0)
      },
      close() {
        bus.chans.delete(entry)
      },
    }
    entry.c = c
    this.chans.add(entry)
    return c
  }
}

function tab(stream: FakeStream, bus: FakeBus, locks: LockManagerLike | null, offset = "-1") {
  const t = { got: [] as number[], leader: false, sub: null as unknown as Subscription<number> }
  const source = sharedSource<number>(stream.direct, stream.catchUp, { name: "feed", locks, channel: bus.channel, heartbeatMs: 50, onRole: (l) => (t.leader = l) })
  t.sub = new Subscription<number>(source, { offset }).listen((x) => t.got.push(x))
  return t
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i)

for (const mode of ["web locks", "channel only"] as const) {
  test(`tabs - ${mode}: one connection for all tabs, every item once in order, and a new leader when the leader's tab closes`, { timeout: 20_000 }, async () => {
    const stream = new FakeStream()
    const bus = new FakeBus()
    const locks = mode === "web locks" ? new FakeLocks() : null
    stream.append(1, 2, 3)
    const tabs = [tab(stream, bus, locks), tab(stream, bus, locks), tab(stream, bus, locks)]
    await until(() => tabs.filter((t) => t.leader).length === 1, 5000, "one leader")
    for (let i = 4; i <= 10; i++) {
      stream.append(i)
      await sleep(5)
    }
    await until(() => tabs.every((t) => t.got.length >= 10), 5000, "every tab has 1..10")
    for (const t of tabs) assert.deepEqual(t.got, range(1, 10))
    assert.equal(stream.maxActive, 1, "never more than one live connection")

    // The leader's tab closes; another takes over and nothing is lost or repeated.
    const old = tabs.find((t) => t.leader)!
    old.sub.close()
    const rest = tabs.filter((t) => t !== old)
    stream.append(11, 12)
    await until(() => rest.filter((t) => t.leader).length === 1, 5000, "a new leader")
    for (let i = 13; i <= 15; i++) stream.append(i)
    await until(() => rest.every((t) => t.got.length >= 15), 5000, "the other tabs have 1..15")
    await sleep(200)
    for (const t of rest) assert.deepEqual(t.got, range(1, 15))
    assert.equal(stream.active, 1)
    assert.equal(stream.opened, 2, "one connection per leadership")

    // A tab that opens later, from a stored offset, catches up and then shares.
    const late = tab(stream, bus, locks, fmt(12))
    stream.append(16)
    await until(() => late.got.length >= 4 && rest.every((t) => t.got.length >= 16), 5000, "the late tab catches up")
    await sleep(100)
    assert.deepEqual(late.got, [13, 14, 15, 16])
    assert.equal(late.leader, false)
    assert.equal(stream.opened, 2)
    for (const t of [...rest, late]) t.sub.close()
    await until(() => stream.active === 0, 2000, "the connection is closed with the last tab")
  })
}

test("tabs - the shared channel is named per user, so tabs signed in as different users never share", () => {
  assert.equal(subjectOf(mintJwt("alice", "s")), "alice")
  assert.equal(subjectOf(mintJwt("bob", "s")), "bob")
  assert.equal(subjectOf("an-admin-key"), "key")
  assert.equal(subjectOf(null), "")
})
