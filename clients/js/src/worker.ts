// worker.ts — the loop of a backend that answers sessions with a model.
//
//   runWorker:  claim ──none──▶ wait for a feed event that a session became
//                 │              pending (no polling), claim again
//                 └─session─▶ runTurn
//
//   runTurn:    handler(ctx) with ctx.signal, ctx.write(chunk)
//                 ├─ heartbeat every lease × heartbeatFraction (with the attempt)
//                 ├─ write/writeMany: an append to the session's stream with
//                 │  Producer-Id/Epoch/Seq and Session-Attempt, retried with
//                 │  the same seq, so each chunk is stored exactly once
//                 ├─ returns {content, metadata} ──▶ complete  → "completed"
//                 ├─ throws ──────────────────────▶ fail      → "failed"
//                 └─ aborted:
//                      409 stale_attempt / the lease ran out   → "lease_lost"
//                      409 invalid_transition, status cancelled → "cancelled"
//                      the session is gone (404)                → "gone"
//
// Invariants:
//   1. Fencing: every heartbeat, append, complete and fail names the
//      attempt the worker claimed; once Parley says that attempt is over,
//      ctx.signal aborts and nothing more is sent for it.
//   2. Cancellation is seen at the next append or heartbeat (the 409), and
//      at once when runWorker's feed reports the session's new status.
//   3. A lease is trusted only until lease_expires_at as measured locally
//      from the last successful claim/heartbeat: past it the turn stops
//      even if the network is down.
//   4. runTurn never throws for the session's own outcome; it resolves it.
import type { ParleyClient } from "./client.js"
import { newKey } from "./outbox.js"
import { ParleyError, anySignal } from "./transport.js"
import type { FeedEvent, Session } from "./types.js"

export type TurnOutcome = "completed" | "failed" | "cancelled" | "lease_lost" | "gone"

/** ctx.signal's reason when a turn is stopped from outside. */
export class TurnAborted extends Error {
  constructor(readonly outcome: Exclude<TurnOutcome, "completed" | "failed">, readonly cause?: unknown) {
    super(`the turn stopped: ${outcome}`)
    this.name = "TurnAborted"
  }
}

export interface TurnContext {
  session: Session
  /** The attempt this worker holds. */
  attempt: number
  /** Aborts when the turn must stop (cancelled, lease lost, worker stopping). */
  signal: AbortSignal
  /** Append one value (any JSON) to the session's stream, exactly once. Ordered. */
  write(value: unknown): Promise<void>
  /** Append several values, each its own item, in one request, exactly once. Ordered with write(). */
  writeMany(values: unknown[]): Promise<void>
}

export type TurnResult = { content: unknown; metadata?: Record<string, unknown> }
export type TurnHandler = (ctx: TurnContext) => Promise<TurnResult>

export interface WorkerOptions {
  /** Lease length asked for on claim and heartbeat (default 60 s). */
  leaseSeconds?: number
  /** Heartbeat every lease × this (default 1/3). */
  heartbeatFraction?: number
  /** This worker's producer name (default "w-" + random). */
  producerId?: string
  /** Only sessions of this conversation. */
  conversationId?: string
  /** Stops the loop (and the current turn). */
  signal?: AbortSignal
  /** Told of each turn's end. */
  onTurn?: (session: Session, outcome: TurnOutcome, error?: unknown) => void
}

function outcomeOf(e: unknown): TurnAborted | null {
  if (!(e instanceof ParleyError)) return null
  if (e.status === 404) return new TurnAborted("gone", e)
  if (e.status === 409 && e.code === "stale_attempt") return new TurnAborted("lease_lost", e)
  if (e.status === 409 && e.code === "invalid_transition") {
    const st = e.details?.current?.status
    return new TurnAborted(st === "cancelled" ? "cancelled" : st === "pending" || st === "processing" ? "lease_lost" : "gone", e)
  }
  return null
}

/** Handle of a running turn, for runWorker's feed. */
interface Turn {
  id: string
  /** The attempt this turn holds. */
  attempt: number
  stop: (why: TurnAborted) => void
}

/** Run one claimed session to its end. */
export async function runTurn(client: ParleyClient, session: Session, handler: TurnHandler, opts: WorkerOptions = {}, hook?: (t: Turn | null) => void): Promise<TurnOutcome> {
  const t = client.transport
  const id = encodeURIComponent(session.id)
  const attempt = session.attempt
  const leaseMs = (opts.leaseSeconds ?? 60) * 1000
  const ctl = new AbortController()
  const stop = (why: TurnAborted) => {
    if (!ctl.signal.aborted) ctl.abort(why)
  }
  const outer = () => stop(new TurnAborted("gone", opts.signal?.reason))
  opts.signal?.addEventListener("abort", outer, { once: true })
  hook?.({ id: session.id, attempt, stop })
  // Until when the lease is ours (invariant 3).
  let leaseEnd = Date.now() + leaseMs
  let deadline = setTimeout(() => stop(new TurnAborted("lease_lost")), leaseMs)
  const renewed = () => {
    leaseEnd = Date.now() + leaseMs
    clearTimeout(deadline)
    deadline = setTimeout(() => stop(new TurnAborted("lease_lost")), Math.max(0, leaseEnd - Date.now()))
  }
  // complete and fail are not cut short by the turn's signal: their own
  // answer (200, or 409 stale_attempt) says how the turn ended.
  const post = (action: string, json: unknown) =>
    t.request({ method: "POST", path: `/v1/sessions/${id}/${action}`, json, idempotencyKey: newKey(), signal: action === "heartbeat" ? ctl.signal : undefined })
  const beat = setInterval(async () => {
    try {
      await post("heartbeat", { lease_seconds: leaseMs / 1000, attempt })
      renewed()
    } catch (e) {
      const why = outcomeOf(e)
      if (why) stop(why)
    }
  }, Math.max(100, leaseMs * (opts.heartbeatFraction ?? 1 / 3)))

  const producer = `${opts.producerId ?? "w"}.${attempt}`
  let seq = 0
  let chain: Promise<void> = Promise.resolve()
  const writeMany = (values: unknown[]): Promise<void> => {
    if (ctl.signal.aborted) return Promise.reject(ctl.signal.reason)
    if (!values.length) return chain
    const n = seq++
    const run = chain.then(async () => {
      try {
        await t.request({
          method: "POST",
          path: `/v1/sessions/${id}/stream`,
          // An array body is flattened one level: each value is one item.
          body: JSON.stringify(values),
          headers: { "Content-Type": "application/json", "Producer-Id": producer, "Producer-Epoch": "0", "Producer-Seq": String(n), "Session-Attempt": String(attempt) },
          signal: ctl.signal,
          retries: 1000,
        })
      } catch (e) {
        const why = outcomeOf(e)
        if (why) stop(why)
        throw ctl.signal.aborted ? ctl.signal.reason : e
      }
    })
    chain = run.catch(() => {})
    return run
  }
  const write = (value: unknown): Promise<void> => writeMany([value])

  let outcome: TurnOutcome
  let error: unknown
  try {
    const aborted = new Promise<never>((_, reject) => {
      if (ctl.signal.aborted) reject(ctl.signal.reason)
      ctl.signal.addEventListener("abort", () => reject(ctl.signal.reason), { once: true })
    })
    aborted.catch(() => {})
    try {
      const result = await Promise.race([handler({ session, attempt, signal: ctl.signal, write, writeMany }), aborted])
      await Promise.race([chain, aborted])
      try {
        await post("complete", { content: result.content, metadata: result.metadata ?? {}, attempt })
      } catch (e) {
        throw outcomeOf(e) ?? e
      }
      outcome = "completed"
    } catch (e) {
      const why = e instanceof TurnAborted ? e : ctl.signal.aborted ? ctl.signal.reason : outcomeOf(e)
      if (why instanceof TurnAborted) {
        outcome = why.outcome
        error = why.cause
      } else {
        error = e
        outcome = "failed"
        try {
          await post("fail", { error: { reason: "worker_error", message: String((e as Error)?.message ?? e) }, attempt })
        } catch (f) {
          const w = outcomeOf(f)
          if (w) outcome = w.outcome
        }
      }
    }
  } finally {
    clearInterval(beat)
    clearTimeout(deadline)
    opts.signal?.removeEventListener("abort", outer)
    hook?.(null)
    if (!ctl.signal.aborted) ctl.abort(new TurnAborted("gone"))
  }
  opts.onTurn?.(session, outcome, error)
  return outcome
}

/**
 * Claim and answer sessions until opts.signal aborts. Waits for work on
 * the change feed (the admin's feed sees every user's sessions).
 */
export async function runWorker(client: ParleyClient, handler: TurnHandler, opts: WorkerOptions = {}): Promise<void> {
  // The loop ends when the caller's signal aborts or the client is closed.
  const signal = anySignal(opts.signal, client.transport.closedSignal)
  opts = { ...opts, signal }
  // Start the feed where it is now, before the first claim, so nothing that
  // becomes pending afterwards goes unnoticed.
  const start = await client.readPage<FeedEvent>("/v1/events", "now", signal)
  let work = false
  let wake: (() => void) | null = null
  let current: Turn | null = null
  let broken: unknown = null
  const sub = client.feed.subscribe({ offset: start.offset, shared: false, signal })
  sub.listen((ev) => {
    if (ev.type !== "session.updated") return
    const to = ev.data?.to
    if (current && ev.session_id === current.id) {
      // The feed may still hold events from before this worker's claim: the
      // session's own creation is "pending" at the attempt just claimed. Only
      // a requeue to a later attempt means the lease was lost; cancelled and
      // failed are final, so they can only be news.
      const at = Number(ev.data?.attempt)
      if (to === "cancelled") current.stop(new TurnAborted("cancelled"))
      else if (to === "failed") current.stop(new TurnAborted("gone"))
      else if (to === "pending" && at > current.attempt) current.stop(new TurnAborted("lease_lost"))
    }
    if (to === "pending") {
      work = true
      wake?.()
    }
  }, (e) => {
    // The feed cannot go on (e.g. the key was revoked): stop with its error.
    broken = e
    current?.stop(new TurnAborted("gone", e))
    wake?.()
  })
  try {
    while (!signal.aborted) {
      if (broken) throw broken
      work = false
      const body: Record<string, unknown> = { lease_seconds: opts.leaseSeconds ?? 60 }
      if (opts.conversationId) body.conversation_id = opts.conversationId
      let session: Session | null = null
      try {
        session = (await client.transport.request({ method: "POST", path: "/v1/sessions/claim", json: body, idempotencyKey: newKey(), signal, retries: 1000 })).data
      } catch (e) {
        if (signal.aborted) return
        throw e
      }
      if (session) {
        await runTurn(client, session, handler, opts, (t) => (current = t))
        continue
      }
      if (work) continue
      await new Promise<void>((r) => {
        wake = r
        signal.addEventListener("abort", () => r(), { once: true })
      })
      wake = null
    }
  } finally {
    sub.close()
  }
}
