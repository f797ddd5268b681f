// tabs.ts — one live connection per browser, shared by every tab.
//
// Each tab that subscribes to the same stream joins an election; the
// leader alone holds the live connection and posts every batch it reads on
// a BroadcastChannel; the other tabs take their batches from there.
//
//   election: Web Locks when present (navigator.locks.request(name) is held
//             by the leader for as long as it subscribes; the browser hands
//             it to a waiting tab when the leader's tab closes or crashes);
//             otherwise BroadcastChannel alone: the leader posts a heartbeat
//             every `heartbeatMs`; a tab that hears none for 3 beats claims
//             the lead, and of two claimants the smaller id wins.
//
// Every tab keeps its own offset. A batch [from, offset) from the channel
// is handled so that a tab never misses nor repeats an item:
//   1. offset <= ours: already seen, dropped;
//   2. from == ours: delivered, ours := offset;
//   3. otherwise (a gap: this tab started elsewhere, or a new leader began
//      behind or ahead): the tab reads what it lacks itself with one-shot
//      catch-up reads from its offset to the tail, then goes on with 1–2.
// A tab also catches up that way when it joins. Parley's offsets are fixed
// width, so comparing them as strings compares stream positions.
import type { Batch, BatchSource } from "./live.js"
import { type ParleyError, backoffDelay, sleep } from "./transport.js"

/** What the election needs of navigator.locks. */
export interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, cb: (lock: unknown) => Promise<unknown>): Promise<unknown>
}

/** What the fan-out needs of a BroadcastChannel. */
export interface ChannelLike {
  postMessage(msg: unknown): void
  onmessage: ((ev: { data: any }) => void) | null
  close(): void
}

export interface TabOptions {
  /**
   * The channel and lock name; tabs with the same name share one connection.
   * A function is called when the subscription starts (the client names it
   * after the server, the path and the token's user, so tabs signed in as
   * different users never share).
   */
  name: string | (() => Promise<string>)
  /** navigator.locks, or null to elect over the channel alone. */
  locks?: LockManagerLike | null
  /** Makes the channel (default: new BroadcastChannel(name)). */
  channel?: (name: string) => ChannelLike
  /** Leader heartbeat for the channel-only election (default 1000 ms). */
  heartbeatMs?: number
  /** Told when this tab becomes leader (true) or stops leading (false). */
  onRole?: (leader: boolean) => void
}

/** True where tabs can share a connection: a document, and BroadcastChannel. */
export function canShareTabs(): boolean {
  const g = globalThis as any
  return typeof g.BroadcastChannel === "function" && typeof g.document === "object" && g.document !== null
}

/** Offsets in stream order: "-1" first, then Parley's fixed-width offsets. */
export function offsetLess(a: string, b: string): boolean {
  if (a === b) return false
  if (a === "-1") return true
  if (b === "-1") return false
  return a < b
}

/**
 * A BatchSource that shares `direct` between tabs. catchUp(offset) reads one
 * non-live page from offset (resolving "now" and "-1" as the server does).
 */
export function sharedSource<T>(direct: BatchSource<T>, catchUp: (offset: string, signal: AbortSignal) => Promise<Batch<T>>, opts: TabOptions): BatchSource<T> {
  return (start, signal) => shared(direct, catchUp, opts, start, signal)
}

async function* shared<T>(direct: BatchSource<T>, catchUp: (offset: string, signal: AbortSignal) => Promise<Batch<T>>, opts: TabOptions, start: string, signal: AbortSignal): AsyncGenerator<Batch<T>> {
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`
  const name = typeof opts.name === "function" ? await opts.name() : opts.name
  const chan = (opts.channel ?? ((n) => new (globalThis as any).BroadcastChannel(n) as ChannelLike))(name)
  const beat = opts.heartbeatMs ?? 1000
  let offset = start
  let leading = false
  let failure: unknown = null
  const out: Batch<T>[] = []
  let notify: (() => void) | null = null
  const wake = () => {
    notify?.()
    notify = null
  }
  // Batches in arrival order, handled one at a time (catch-up reads are async).
  const inbox: Batch<T>[] = []
  let busy = false

  const deliver = (b: Batch<T>) => {
    offset = b.offset
    out.push(b)
    wake()
  }
  const fill = async () => {
    // Read from our offset to the tail ourselves (invariant 3).
    for (let i = 0; i < 10_000 && !signal.aborted; i++) {
      let b: Batch<T>
      try {
        b = await catchUp(offset, signal)
      } catch (e) {
        // A read that may work later (offline, 5xx) is tried again, as a live connection would be.
        if (signal.aborted || !(e as ParleyError)?.retryable) throw e
        await sleep(backoffDelay(Math.min(i, 8), {}), signal).catch(() => {})
        continue
      }
      if (b.from !== offset) continue // moved meanwhile: read again from there
      if (b.items.length || b.offset !== offset || b.closed) deliver(b)
      if (b.upToDate || b.closed || b.offset === b.from) return
    }
  }
  const handle = async () => {
    if (busy) return
    busy = true
    try {
      while (inbox.length && !signal.aborted) {
        const b = inbox.shift()!
        if (!offsetLess(offset, b.offset) && !b.closed) continue
        if (b.from === offset) deliver(b)
        else if (offsetLess(offset, b.offset) || b.closed) await fill()
      }
    } catch (e) {
      if (!signal.aborted) failure = e
      wake()
    } finally {
      busy = false
    }
  }
  const take = (b: Batch<T>) => {
    inbox.push(b)
    void handle()
  }

  // The leader: read directly, post every batch, keep them too.
  const lead = async (stop: AbortSignal) => {
    leading = true
    opts.onRole?.(true)
    try {
      for await (const b of direct(offset, stop)) {
        chan.postMessage({ t: "batch", b })
        take(b)
      }
    } catch (e) {
      if (!stop.aborted) {
        failure = e
        wake()
      }
    } finally {
      leading = false
      opts.onRole?.(false)
    }
  }

  // The channel-only election's state.
  let lastBeat = 0
  let leaderCtl: AbortController | null = null
  let claiming = false
  let timer: ReturnType<typeof setInterval> | null = null

  chan.onmessage = (ev) => {
    const m = ev.data
    if (!m || typeof m !== "object") return
    if (m.t === "batch") {
      if (!leading) take(m.b)
    } else if (m.t === "hb" || m.t === "claim") {
      // Of two leaders (or claimants), the smaller id stays; a claim from a
      // smaller id also holds off our own claim for a while.
      if (m.t === "hb" || m.id < id) lastBeat = Date.now()
      if ((leaderCtl || claiming) && m.id < id) {
        claiming = false
        leaderCtl?.abort()
        leaderCtl = null
      } else if ((leaderCtl || claiming) && m.id > id) {
        // Tell the larger one at once that we are here.
        chan.postMessage({ t: leaderCtl ? "hb" : "claim", id })
      }
    } else if (m.t === "bye" && !opts.locks) {
      lastBeat = 0
      tick()
    }
  }
  const tick = () => {
    if (signal.aborted) return
    if (leaderCtl) {
      chan.postMessage({ t: "hb", id })
      return
    }
    if (claiming || Date.now() - lastBeat < beat * 3) return
    claiming = true
    chan.postMessage({ t: "claim", id })
    setTimeout(() => {
      if (!claiming || signal.aborted || Date.now() - lastBeat < beat * 3) {
        claiming = false
        return
      }
      claiming = false
      const ctl = new AbortController()
      leaderCtl = ctl
      chan.postMessage({ t: "hb", id })
      const stop = () => ctl.abort()
      signal.addEventListener("abort", stop, { once: true })
      void lead(ctl.signal).finally(() => {
        signal.removeEventListener("abort", stop)
        if (leaderCtl === ctl) leaderCtl = null
      })
    }, Math.max(50, beat / 3))
  }

  try {
    // Join: catch up from our own offset first (batches posted meanwhile wait in the inbox).
    busy = true
    try {
      await fill()
    } finally {
      busy = false
    }
    void handle()
    if (opts.locks) {
      opts.locks
        .request(name, { signal }, async () => {
          if (!signal.aborted) await lead(signal)
        })
        .catch(() => {}) // aborted while waiting
    } else {
      timer = setInterval(tick, beat)
      tick()
    }
    while (!signal.aborted) {
      if (failure) throw failure
      if (out.length) {
        const b = out.shift()!
        yield b
        if (b.closed) return
        continue
      }
      await new Promise<void>((r) => {
        notify = r
        signal.addEventListener("abort", () => r(), { once: true })
      })
    }
  } finally {
    if (timer) clearInterval(timer)
    const ctl = leaderCtl as AbortController | null
    if (ctl) {
      ctl.abort()
      if (!opts.locks) chan.postMessage({ t: "bye", id })
    }
    chan.onmessage = null
    chan.close()
  }
}
