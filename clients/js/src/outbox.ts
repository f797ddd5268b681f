// outbox.ts — every write, persisted before it is sent, applied exactly once.
//
// A write is one logical operation: enqueue() gives it an Idempotency-Key
// (crypto.randomUUID) and its body as the exact text to send, stores that
// entry, and only then sends it. The entry leaves the store once the server
// has answered it for good (a 2xx, or an error no retry can change). So:
//
//   1. A retry — after a lost response, a timeout, 409 in flight, 429, 5xx,
//      or a page reload that finds the entry again — carries the same key
//      and the same bytes; Parley answers it from the stored response
//      (Idempotent-Replayed: true) instead of applying it twice.
//   2. Offline, the head entry waits: on the browser's `online` event, on
//      the next enqueue() or drain(), or on a backoff timer (full jitter,
//      up to 30 s), whichever comes first. Nothing is dropped.
//   3. Entries are sent one at a time, in the order they were enqueued, so
//      two messages sent in a row are stored in that order.
//   4. Two tabs draining the same persisted entry send the same key: the
//      server applies it once and both get its answer.
//
// The caller's promise resolves with the server's answer. An entry found
// in the store after a reload has no caller any more: its outcome is given
// to the onSettled listeners.
import { type Answer, ParleyError, type Transport, backoffDelay } from "./transport.js"

/** One persisted write. */
export interface OutboxEntry {
  /** The entry's id (also its Idempotency-Key). */
  id: string
  method: string
  path: string
  /** The exact body text (JSON), sent byte for byte on every attempt. */
  body?: string
  headers?: Record<string, string>
  /** When it was enqueued (ms since the epoch; strictly increasing within one outbox, so it orders entries). */
  createdAt: number
}

/** Where entries are kept. load() returns them in enqueue order. */
export interface OutboxStore {
  load(): Promise<OutboxEntry[]>
  put(entry: OutboxEntry): Promise<void>
  delete(id: string): Promise<void>
}

/** What a settled entry came to: the answer, or the final error. */
export interface Settled {
  entry: OutboxEntry
  answer?: Answer
  error?: ParleyError
}

/** Entries in memory only: kept across retries, not across a restart. */
export class MemoryOutboxStore implements OutboxStore {
  private entries = new Map<string, OutboxEntry>()
  async load() {
    return [...this.entries.values()]
  }
  async put(e: OutboxEntry) {
    this.entries.set(e.id, e)
  }
  async delete(id: string) {
    this.entries.delete(id)
  }
}

/** A new key: crypto.randomUUID where it exists, else 128 random bits. */
export function newKey(): string {
  const c = globalThis.crypto
  if (typeof c?.randomUUID === "function") return c.randomUUID()
  const b = c.getRandomValues(new Uint8Array(16))
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("")
}

type Waiter = { resolve: (a: Answer) => void; reject: (e: unknown) => void }

export class Outbox {
  private queue: OutboxEntry[] = []
  private waiters = new Map<string, Waiter>()
  private listeners = new Set<(s: Settled) => void>()
  private loaded: Promise<void>
  private running = false
  private wakeUp: (() => void) | null = null
  private closed = false
  private offOnline: () => void = () => {}
  private lastAt = 0
  /** Entries with an attempt that got no answer (it may have been applied). */
  private unsure = new Set<string>()

  constructor(
    private readonly transport: Transport,
    readonly store: OutboxStore,
  ) {
    this.loaded = store.load().then((found) => {
      const known = new Set(this.queue.map((e) => e.id))
      this.queue.unshift(...found.filter((e) => !known.has(e.id)))
    })
    const g = globalThis as any
    if (typeof g.addEventListener === "function") {
      const on = () => this.drain()
      g.addEventListener("online", on)
      this.offOnline = () => g.removeEventListener?.("online", on)
    }
    this.kick()
  }

  /** Persist a write, then send it; resolves with the server's answer. */
  async enqueue(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<Answer> {
    if (this.closed) throw new Error("the client is closed")
    const h: Record<string, string> = { ...headers }
    if (json !== undefined) h["Content-Type"] ??= method === "PATCH" ? "application/merge-patch+json" : "application/json"
    const entry: OutboxEntry = {
      id: newKey(),
      method,
      path,
      body: json === undefined ? undefined : JSON.stringify(json),
      headers: h,
      createdAt: (this.lastAt = Math.max(Date.now(), this.lastAt + 1)),
    }
    const done = new Promise<Answer>((resolve, reject) => this.waiters.set(entry.id, { resolve, reject }))
    try {
      await this.loaded
      await this.store.put(entry)
    } catch (e) {
      // Not stored: not sent either, and the caller hears why.
      this.waiters.delete(entry.id)
      throw e
    }
    this.queue.push(entry)
    this.drain()
    return done
  }

  /** Entries not yet answered, oldest first. */
  async pending(): Promise<OutboxEntry[]> {
    await this.loaded
    return [...this.queue]
  }

  /** Be told how each entry ends (also those found after a reload). Returns the unsubscribe. */
  onSettled(fn: (s: Settled) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /** Try the queue now (network back, or the app knows better). Resolves when it is empty or stalls. */
  drain(): void {
    if (this.wakeUp) this.wakeUp()
    else this.kick()
  }

  /** Resolve once every entry enqueued so far has settled. */
  async flush(): Promise<void> {
    await this.loaded
    const ids = this.queue.map((e) => e.id)
    await Promise.all(ids.map((id) => new Promise<void>((r) => {
      if (!this.queue.some((e) => e.id === id)) return r()
      const off = this.onSettled((s) => {
        if (s.entry.id === id) {
          off()
          r()
        }
      })
    })))
  }

  /** Stop sending (entries stay in the store for the next instance). */
  close(): void {
    this.closed = true
    this.offOnline()
    this.wakeUp?.()
  }

  private kick(): void {
    if (this.running || this.closed) return
    this.running = true
    this.run().finally(() => {
      this.running = false
    })
  }

  private async run(): Promise<void> {
    await this.loaded
    let failures = 0
    while (!this.closed && this.queue.length) {
      const entry = this.queue[0]
      const nav = (globalThis as any).navigator
      let settled: Settled | null = null
      let wait: number | undefined
      if (nav?.onLine !== false) {
        try {
          const answer = await this.transport.request({
            method: entry.method,
            path: entry.path,
            body: entry.body,
            headers: entry.headers,
            idempotencyKey: entry.id,
            retries: 2,
            // A DELETE retried after a lost answer finds the object gone: that is its success.
            accept: entry.method === "DELETE" ? [404] : undefined,
          })
          settled = { entry, answer }
        } catch (e) {
          const err = e instanceof ParleyError ? e : new ParleyError(0, "network_error", String(e))
          if (err.uncertain || err.status === 0) this.unsure.add(entry.id)
          err.uncertain = this.unsure.has(entry.id)
          if (!err.retryable) settled = { entry, error: err }
          else wait = err.retryAfterMs
        }
      }
      if (!settled) {
        // Offline or refused for now: wait for `online`, drain(), enqueue() or the timer.
        const delay = wait ?? backoffDelay(failures++ + 3, this.transport.retry, this.transport.random) + 100
        await new Promise<void>((resolve) => {
          const t = setTimeout(go, delay)
          function go() {
            clearTimeout(t)
            resolve()
          }
          this.wakeUp = go
        })
        this.wakeUp = null
        continue
      }
      failures = 0
      await this.store.delete(entry.id)
      this.queue.shift()
      this.unsure.delete(entry.id)
      const w = this.waiters.get(entry.id)
      this.waiters.delete(entry.id)
      if (settled.error) w?.reject(settled.error)
      else w?.resolve(settled.answer!)
      for (const fn of this.listeners) {
        try {
          fn(settled)
        } catch {
          // a listener's error is its own
        }
      }
    }
  }
}
