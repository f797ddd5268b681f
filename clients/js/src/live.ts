// live.ts — follow a JSON stream live, resuming by offset, never polling.
//
// A subscription reads batches from a Durable Stream (the feed, a
// conversation's log, a session's tokens, any /v1/stream path):
//
//   connect(offset) ──SSE over fetch──▶ data event (items) + control event
//        ▲                                  (streamNextOffset) ─▶ batch
//        │                                  offset := streamNextOffset
//        ├── connection recycled by the server ─▶ reconnect at once
//        ├── network error / 5xx / 429 ─▶ backoff (full jitter, Retry-After)
//        ├── `online`, page visible again ─▶ drop the connection, reconnect now
//        └── no streaming body / not text/event-stream ─▶ long-poll from then on
//
// Items: a JSON stream's values. Any other stream's data (a body, an SSE
// data event) is one string item (over SSE, whose answer does not say
// what the stream holds, text that parses as JSON is taken as JSON: this
// reader is made for JSON streams); a byte stream's SSE data, which comes
// base64-encoded (Stream-SSE-Data-Encoding: base64), is decoded first, so
// SSE and long-poll hand over the same text.
//
// Invariants:
//   1. The offset only moves when a batch is complete (a control event, or a
//      long-poll answer), so an interrupted connection never loses or
//      repeats an item: the next connection starts where the last batch ended.
//   2. Items of one batch are delivered in order, and `offset` is the batch's
//      end when its last item is delivered: an app that stores `offset`
//      after handling an item resumes after it, or (mid-batch) at most
//      re-reads the rest of that batch, never skips anything.
//   3. EventSource is not used: it cannot send Authorization.
import { ParleyError, type Transport, backoffDelay, parseRetryAfter, sleep } from "./transport.js"

/** One complete read: the items from `from` up to `offset`. */
export interface Batch<T = any> {
  items: T[]
  /** Where this batch started. */
  from: string
  /** Where the next read starts (persist this to resume). */
  offset: string
  /** The reader has caught up with the stream's tail. */
  upToDate: boolean
  /** The stream is closed: nothing will follow. */
  closed: boolean
}

export interface SubscribeOptions {
  /** Where to start: an offset from a previous batch, "-1" (start, the default) or "now". */
  offset?: string
  /** "auto" (SSE, falling back to long-poll), "sse" or "long-poll". */
  live?: "auto" | "sse" | "long-poll"
  signal?: AbortSignal
}

/** Something that produces batches from an offset (a direct connection, or another tab's). */
export type BatchSource<T> = (offset: string, signal: AbortSignal) => AsyncIterable<Batch<T>>

/** Events that mean "the network may be back": `online`, and a page becoming visible. */
function onWake(fn: () => void): () => void {
  const g = globalThis as any
  if (typeof g.addEventListener !== "function") return () => {}
  const vis = () => {
    if (g.document?.visibilityState !== "hidden") fn()
  }
  g.addEventListener("online", fn)
  g.document?.addEventListener?.("visibilitychange", vis)
  return () => {
    g.removeEventListener?.("online", fn)
    g.document?.removeEventListener?.("visibilitychange", vis)
  }
}

function withOffset(path: string, offset: string, live: string): string {
  return `${path}${path.includes("?") ? "&" : "?"}offset=${encodeURIComponent(offset)}&live=${live}`
}

/** A byte stream's SSE data event (base64, one line per group of bytes) as its text. */
function base64Text(lines: string[]): string {
  const bin = atob(lines.join(""))
  const bytes = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
  return new TextDecoder().decode(bytes)
}

function parseItems(text: string): any[] {
  try {
    const v = JSON.parse(text)
    return Array.isArray(v) ? v : [v]
  } catch {
    return [text]
  }
}

async function failure(res: Response): Promise<ParleyError> {
  let body: any = null
  try {
    body = JSON.parse(await res.text())
  } catch {
    // not JSON
  }
  const e = body?.error
  return new ParleyError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? `HTTP ${res.status}`, e?.details, parseRetryAfter(res.headers.get("retry-after")))
}

/**
 * Batches of a stream, live, from opts.offset: reconnects and resumes by
 * offset until the stream is closed or the signal aborts. Rejects on an
 * error no retry can fix (404, 403, ...).
 */
export async function* liveBatches<T = any>(transport: Transport, path: string, offset: string, opts: SubscribeOptions, signal: AbortSignal): AsyncGenerator<Batch<T>> {
  let mode = opts.live ?? "auto"
  let failures = 0
  let conn: AbortController | null = null
  let napping: (() => void) | null = null
  const off = onWake(() => {
    failures = 0
    conn?.abort()
    napping?.()
  })
  try {
    while (!signal.aborted) {
      conn = new AbortController()
      const stop = () => conn!.abort()
      signal.addEventListener("abort", stop, { once: true })
      let got = false
      try {
        if (mode === "long-poll") {
          const res = await transport.fetchOnce(withOffset(path, offset, "long-poll"), { signal: conn.signal })
          if (res.status !== 200 && res.status !== 204) throw await failure(res)
          const next = res.headers.get("stream-next-offset") ?? offset
          const closed = res.headers.get("stream-closed") === "true"
          // A JSON stream's answer is its items; any other stream's body is one text item.
          const text = res.status === 200 ? await res.text() : ""
          const items = /json/i.test(res.headers.get("content-type") ?? "") ? (text ? parseItems(text) : []) : text ? [text] : []
          got = true
          if (items.length || closed || next !== offset) {
            const b: Batch<T> = { items, from: offset, offset: next, upToDate: res.headers.get("stream-up-to-date") === "true" || res.status === 204, closed }
            offset = next
            yield b
          }
          if (closed) return
        } else {
          const res = await transport.fetchOnce(withOffset(path, offset, "sse"), { headers: { Accept: "text/event-stream" }, signal: conn.signal })
          if (!res.ok) throw await failure(res)
          if (!res.body || !/text\/event-stream/.test(res.headers.get("content-type") ?? "")) {
            if (mode === "sse") throw new ParleyError(0, "sse_unavailable", "the answer is not an event stream")
            await res.body?.cancel().catch(() => {})
            mode = "long-poll"
            continue
          }
          // A byte stream's data comes base64-encoded (the answer says so).
          const base64 = /^base64$/i.test(res.headers.get("stream-sse-data-encoding") ?? "")
          const reader = res.body.getReader()
          const decoder = new TextDecoder()
          let buf = ""
          let pending: T[] = []
          for (;;) {
            const { value, done } = await reader.read()
            if (done) break
            buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n")
            let end: number
            while ((end = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, end)
              buf = buf.slice(end + 2)
              let type = "message"
              const data: string[] = []
              for (const line of block.split("\n")) {
                if (!line || line[0] === ":") continue
                const c = line.indexOf(":")
                const field = c < 0 ? line : line.slice(0, c)
                let v = c < 0 ? "" : line.slice(c + 1)
                if (v[0] === " ") v = v.slice(1)
                if (field === "event") type = v
                else if (field === "data") data.push(v)
              }
              if (type === "data") pending.push(...(base64 ? [base64Text(data)].filter((t) => t !== "") : parseItems(data.join("\n"))))
              else if (type === "control") {
                const ctl = JSON.parse(data.join("\n"))
                const next: string = ctl.streamNextOffset ?? offset
                const b: Batch<T> = { items: pending, from: offset, offset: next, upToDate: !!ctl.upToDate, closed: !!ctl.streamClosed }
                pending = []
                offset = next
                got = true
                failures = 0
                yield b
                if (b.closed) {
                  await reader.cancel().catch(() => {})
                  return
                }
              }
            }
          }
        }
        if (got) failures = 0
        else throw new ParleyError(0, "network_error", "the connection ended before any event")
      } catch (e) {
        if (signal.aborted) return
        if (conn.signal.aborted) continue // woken: reconnect now
        const err = e instanceof ParleyError ? e : new ParleyError(0, "network_error", String((e as Error)?.message ?? e))
        if (!err.retryable) throw err
        const wait = err.retryAfterMs ?? backoffDelay(failures++, transport.retry, transport.random)
        const nap = new AbortController()
        napping = () => nap.abort()
        const stopNap = () => nap.abort()
        signal.addEventListener("abort", stopNap, { once: true })
        await sleep(wait, nap.signal).catch(() => {})
        signal.removeEventListener("abort", stopNap)
        napping = null
      } finally {
        signal.removeEventListener("abort", stop)
      }
    }
  } finally {
    off()
    conn?.abort()
  }
}

/**
 * A live subscription: iterate it (`for await (const item of sub)`), or give
 * a callback to subscribe(). `offset` is where to resume (see invariant 2).
 */
export class Subscription<T = any> implements AsyncIterable<T> {
  /** Where a new subscription should start to continue this one. */
  offset: string
  /** True once the reader has caught up with the tail at least once. */
  upToDate = false
  private ctrl = new AbortController()
  private started = false

  constructor(
    private readonly source: BatchSource<T>,
    opts: SubscribeOptions,
  ) {
    this.offset = opts.offset ?? "-1"
    if (opts.signal) {
      if (opts.signal.aborted) this.ctrl.abort()
      else opts.signal.addEventListener("abort", () => this.close(), { once: true })
    }
  }

  /** Stop: the iteration ends, the connection is closed. */
  close(): void {
    this.ctrl.abort()
  }

  get closed(): boolean {
    return this.ctrl.signal.aborted
  }

  /** Whole batches, with their offsets (for apps that store the offset per batch). */
  async *batches(): AsyncGenerator<Batch<T>> {
    if (this.started) throw new Error("a subscription can be read once")
    this.started = true
    try {
      for await (const b of this.source(this.offset, this.ctrl.signal)) {
        if (this.ctrl.signal.aborted) return
        this.upToDate ||= b.upToDate
        this.offset = b.offset
        yield b
        if (b.closed) return
      }
    } finally {
      this.ctrl.abort()
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for await (const b of this.batches()) {
      const resume = this.offset
      // `offset` stays at the batch's start until its last item is handed out.
      this.offset = b.from
      for (let i = 0; i < b.items.length; i++) {
        if (i === b.items.length - 1) this.offset = resume
        yield b.items[i]
      }
      this.offset = resume
    }
  }

  /** Callback form: fn(item, sub) for every item; onError gets a final error. Returns this. */
  listen(fn: (item: T, sub: Subscription<T>) => void, onError?: (err: unknown) => void): this {
    ;(async () => {
      for await (const item of this) fn(item, this)
    })().catch((e) => {
      if (onError) onError(e)
      else queueMicrotask(() => {
        throw e
      })
    })
    return this
  }
}
