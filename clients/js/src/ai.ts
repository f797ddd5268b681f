// ai.ts — a ChatTransport for the AI SDK (`ai` 7): useChat with Parley
// as its store and its stream. Entry point "@parley/client/ai"; it imports
// only types from `ai`, so it adds nothing of the SDK to a bundle.
//
//   useChat({ id: conversationId, messages: await loadMessages(…), transport, resume: true })
//
//   sendMessages ─▶ messages.send(chatId, the user's message, process: true)
//        │            (through the outbox: one Idempotency-Key, stored once)
//        ├─▶ optional: POST {chatId, sessionId} to the app's answer route
//        └─▶ the session's token stream, live from offset -1 ─▶ UIMessageChunks
//   reconnectToStream ─▶ the chat's newest session still running? ─▶ its
//        stream from the start, then live (resumeStreamIsReplay: useChat
//        rebuilds the answer from it); finished ─▶ null
//   abortSignal (useChat's stop) ─▶ sessions.cancel ─▶ the stream is closed
//        there, so it holds exactly what the worker wrote; its text is
//        stored as an assistant message (metadata {session_id, stopped: true})
//
// Items of a token stream become chunks like this:
//   - UIMessageChunks (what @parley/client/ai-server writes) pass through,
//     except the framing (start, finish, start-step, finish-step): the
//     transport frames the answer itself as one message with one step, so
//   - {"type":"attempt"} (the server handed the turn to another worker)
//     becomes `reset-step`, which drops everything the failed attempt showed;
//   - {"type":"delta","text"} (what runWorker examples write) becomes a text part;
//   - at the stream's end the session's status gives the last chunk:
//     completed → finish, failed → error, cancelled → abort.
//
// Invariants:
//   1. Every token is read once per stream: a dropped connection resumes
//      at the offset of the last complete batch (live.ts), never from the
//      start; only a new page (reconnectToStream) reads from the start.
//   2. An abort of sendMessages' stream is the user's stop: the session is
//      cancelled. An abort of reconnectToStream's stream is too, unless
//      another reconnect for the same chat starts at once (useChat replaces
//      a resume request that way): that one goes on reading instead.
//   3. A reload is not a stop: nothing is cancelled when the page goes away.
import type { ChatRequestOptions, ChatTransport, UIMessage, UIMessageChunk } from "ai"
import type { ParleyClient } from "./client.js"
import type { LiveOptions } from "./client.js"
import type { Subscription } from "./live.js"
import { ParleyError } from "./transport.js"
import type { Message, Session } from "./types.js"

export interface ParleyChatTransportOptions {
  /** The Parley client (the user's token). */
  client: ParleyClient
  /**
   * The app's route that answers (see answerChat in @parley/client/ai-server):
   * POSTed {chatId, sessionId, ...body} after each message. A function is
   * called instead. Leave it out when a runWorker loop answers.
   */
  api?: string | ((req: { chatId: string; sessionId: string; headers?: Record<string, string>; body?: object }) => Promise<unknown>)
  /** Store a stopped answer's text as an assistant message (default true). */
  keepPartial?: boolean
  /** How the token stream is followed (default "auto": SSE, else long-poll). */
  live?: LiveOptions["live"]
  /** The fetch for `api` (default the global one). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>
}

const RUNNING = new Set(["pending", "processing", "awaiting_input"])
const FRAMING = new Set(["start", "finish", "start-step", "finish-step"])

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v)
}

/** A message's parts as Parley content: the text when it is only text, else the parts. */
export function contentOf(parts: readonly any[]): unknown {
  const kept = parts.filter((p) => p?.type !== "step-start")
  if (kept.every((p) => p?.type === "text")) return kept.map((p) => p.text).join("")
  return parts
}

/** A Parley message as a UIMessage (null for roles useChat has no place for). */
export function toUIMessage<M extends UIMessage = UIMessage>(m: Message): M | null {
  if (m.role !== "user" && m.role !== "assistant" && m.role !== "system") return null
  const c = m.content
  let parts: any[]
  if (typeof c === "string") parts = [{ type: "text", text: c }]
  else if (Array.isArray(c) && c.every((p) => isObject(p) && typeof p.type === "string")) parts = c
  else if (isObject(c) && Array.isArray(c.parts)) parts = c.parts
  else parts = [{ type: "text", text: JSON.stringify(c) }]
  const msg: any = { id: m.id, role: m.role, parts }
  if (m.metadata && Object.keys(m.metadata).length) msg.metadata = m.metadata
  return msg as M
}

/** A conversation's messages as UIMessages: useChat's initial `messages`. */
export async function loadMessages<M extends UIMessage = UIMessage>(client: ParleyClient, conversationId: string): Promise<M[]> {
  const out: M[] = []
  for await (const m of client.messages.all(conversationId)) {
    const u = toUIMessage<M>(m)
    if (u) out.push(u)
  }
  return out
}

type Emit = (chunk: UIMessageChunk) => void

/** Turns token-stream items into UIMessageChunks (see the top of the file). */
export class ChunkReader {
  /** Text and reasoning parts started and not ended: closed at the end. */
  private open = new Map<string, "text" | "reasoning">()
  /** The text part {"type":"delta"} items go to, in this attempt. */
  private deltaId: string | null = null
  private attempts = 0
  private finishReason: any = undefined
  /** An error chunk came through: the chat already has the error. */
  errored = false
  /** Items read so far. */
  count = 0

  begin(emit: Emit): void {
    emit({ type: "start" } as UIMessageChunk)
    emit({ type: "start-step" } as UIMessageChunk)
  }

  item(it: any, emit: Emit): void {
    this.count++
    if (!isObject(it) || typeof it.type !== "string") return
    const t = it.type
    if (t === "attempt") {
      this.open.clear()
      this.deltaId = null
      this.attempts++
      emit({ type: "reset-step" } as UIMessageChunk)
    } else if (t === "delta") {
      if (typeof it.text !== "string") return
      if (!this.deltaId) {
        this.deltaId = `parley-text-${this.attempts}`
        this.open.set(this.deltaId, "text")
        emit({ type: "text-start", id: this.deltaId } as UIMessageChunk)
      }
      emit({ type: "text-delta", id: this.deltaId, delta: it.text } as UIMessageChunk)
    } else if (FRAMING.has(t)) {
      if (t === "finish" && it.finishReason) this.finishReason = it.finishReason
      if ((t === "start" || t === "finish") && it.messageMetadata != null) emit({ type: "message-metadata", messageMetadata: it.messageMetadata } as UIMessageChunk)
    } else {
      if (t === "text-start" || t === "reasoning-start") this.open.set(it.id, t === "text-start" ? "text" : "reasoning")
      else if (t === "text-end" || t === "reasoning-end") this.open.delete(it.id)
      else if (t === "error") this.errored = true
      emit(it as UIMessageChunk)
    }
  }

  /** The last chunks, from how the session ended. */
  end(session: Session | null, emit: Emit): void {
    for (const [id, kind] of this.open) emit({ type: kind === "text" ? "text-end" : "reasoning-end", id } as UIMessageChunk)
    this.open.clear()
    const status = session?.status
    if (status === "failed") {
      if (!this.errored) {
        const e = session!.error as any
        emit({ type: "error", errorText: typeof e?.message === "string" ? e.message : `the answer failed: ${JSON.stringify(e ?? null)}` } as UIMessageChunk)
      }
    } else if (status === "cancelled") emit({ type: "abort", reason: "cancelled" } as UIMessageChunk)
    else emit({ type: "finish", finishReason: this.finishReason ?? "stop" } as UIMessageChunk)
  }
}

/** The text and reasoning parts a token stream's items add up to (the last attempt's). */
export function partsOfItems(items: readonly unknown[]): any[] {
  let parts: any[] = []
  const byId = new Map<string, any>()
  const r = new ChunkReader()
  r.begin(() => {})
  const on = (c: any) => {
    if (c.type === "reset-step") {
      parts = []
      byId.clear()
    } else if (c.type === "text-start" || c.type === "reasoning-start") {
      const p = { type: c.type === "text-start" ? "text" : "reasoning", text: "" }
      byId.set(c.id, p)
      parts.push(p)
    } else if (c.type === "text-delta" || c.type === "reasoning-delta") {
      const p = byId.get(c.id)
      if (p) p.text += c.delta
    }
  }
  for (const it of items) r.item(it, on)
  return parts.filter((p) => p.text !== "")
}

function closedStream(): ReadableStream<UIMessageChunk> {
  return new ReadableStream({ start: (c) => c.close() })
}

export class ParleyChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  /** reconnectToStream replays the answer from its start: useChat rebuilds it. */
  readonly resumeStreamIsReplay = true
  private readonly client: ParleyClient
  private readonly opts: ParleyChatTransportOptions
  /** The latest request per chat: a replaced resume does not cancel (invariant 2). */
  private readonly latest = new Map<string, number>()
  private seq = 0
  private readonly subs = new Set<Subscription>()
  private readonly stops = new Set<Promise<void>>()

  constructor(opts: ParleyChatTransportOptions) {
    this.client = opts.client
    this.opts = opts
  }

  async sendMessages(options: { trigger: "submit-message" | "regenerate-message"; chatId: string; messageId: string | undefined; messages: UI_MESSAGE[]; abortSignal: AbortSignal | undefined } & ChatRequestOptions): Promise<ReadableStream<UIMessageChunk>> {
    const { chatId, messages, abortSignal } = options
    if (options.trigger !== "submit-message" || options.messageId != null)
      throw new Error("Parley keeps one line of messages per conversation (no branches yet): an answer cannot be regenerated nor a message edited; send a new message instead")
    const last = messages[messages.length - 1]
    if (!last || last.role !== "user") throw new Error("the last message must be the user's (tool results sent back from the browser are not supported)")
    const gen = this.mark(chatId)
    const msg = await this.client.messages.send(chatId, {
      role: "user",
      content: contentOf(last.parts),
      ...(isObject(last.metadata) ? { metadata: last.metadata } : {}),
      process: true,
    })
    const sid = msg.session!.id
    let routeFailed: ((why: string) => void) | null = null
    if (this.opts.api) void this.callRoute(chatId, sid, options).catch((e) => routeFailed?.(String(e?.message ?? e)))
    return this.follow(chatId, sid, abortSignal, gen, false, (fail) => (routeFailed = fail))
  }

  async reconnectToStream(options: { chatId: string; abortSignal?: AbortSignal } & ChatRequestOptions): Promise<ReadableStream<UIMessageChunk> | null> {
    const gen = this.mark(options.chatId)
    // The newest session (a list of one: no 404, so no console error, for a chat without any).
    const s = (await this.client.sessions.list(options.chatId, { limit: 1 })).items[0]
    if (!s || !RUNNING.has(s.status)) return null
    return this.follow(options.chatId, s.id, options.abortSignal, gen, true)
  }

  /** Stops reading every stream (sessions go on: closing is not stopping). */
  close(): void {
    for (const s of this.subs) s.close()
    this.subs.clear()
  }

  /** Resolves when every stop (cancel, then the partial answer stored) has finished. */
  async settled(): Promise<void> {
    while (this.stops.size) await Promise.allSettled([...this.stops])
  }

  private mark(chatId: string): number {
    const gen = ++this.seq
    this.latest.set(chatId, gen)
    return gen
  }

  private async callRoute(chatId: string, sessionId: string, o: ChatRequestOptions): Promise<void> {
    const api = this.opts.api!
    const headers = o.headers instanceof Headers ? Object.fromEntries(o.headers.entries()) : o.headers
    if (typeof api === "function") {
      await api({ chatId, sessionId, headers, body: o.body })
      return
    }
    const f = this.opts.fetch ?? ((u: string, i: RequestInit) => fetch(u, i))
    const res = await f(api, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify({ ...o.body, chatId, sessionId }) })
    if (res.status >= 400) throw new Error(`the answer route answered ${res.status}`)
  }

  /** The session's token stream as UIMessageChunks, from its start. */
  private follow(chatId: string, sessionId: string, signal: AbortSignal | undefined, gen: number, resumed: boolean, onRouteFail?: (fail: (why: string) => void) => void): ReadableStream<UIMessageChunk> {
    const stopped = () => {
      if (!resumed) return this.stop(chatId, sessionId)
      // A resume replaced at once by another is not a stop (invariant 2).
      setTimeout(() => {
        if (this.latest.get(chatId) === gen) this.stop(chatId, sessionId)
      }, 0)
    }
    if (signal?.aborted) {
      stopped()
      return closedStream()
    }
    const sub = this.client.sessions.stream(sessionId, { offset: "-1", live: this.opts.live })
    this.subs.add(sub)
    const reader = new ChunkReader()
    let done = false
    const onAbort = () => {
      sub.close()
      stopped()
    }
    signal?.addEventListener("abort", onAbort, { once: true })
    const finish = () => {
      done = true
      this.subs.delete(sub)
      signal?.removeEventListener("abort", onAbort)
    }
    return new ReadableStream<UIMessageChunk>({
      start: (controller) => {
        const emit: Emit = (c) => {
          if (!done) controller.enqueue(c)
        }
        onRouteFail?.((why) => {
          if (done || reader.count) return
          emit({ type: "error", errorText: why } as UIMessageChunk)
          sub.close()
        })
        reader.begin(emit)
        void (async () => {
          try {
            let ended = false
            for await (const b of sub.batches()) {
              for (const it of b.items) reader.item(it, emit)
              ended ||= b.closed
            }
            // The stream was closed: the session ended (not a stop or close() here).
            if (ended && !signal?.aborted && !reader.errored) reader.end(await this.client.sessions.get(sessionId).catch(() => null), emit)
            finish()
            controller.close()
          } catch (e) {
            const wasDone = done
            finish()
            if (!wasDone) controller.error(e)
          }
        })()
      },
      cancel: () => {
        finish()
        sub.close()
      },
    })
  }

  /** The user's stop: cancel, then keep what the worker wrote until then. */
  private stop(chatId: string, sessionId: string): void {
    const p = (async () => {
      try {
        await this.client.sessions.cancel(sessionId)
      } catch (e) {
        // 409: it had already ended (completed, failed, or another tab stopped it first).
        if (e instanceof ParleyError && (e.status === 409 || e.status === 404)) return
        throw e
      }
      if (this.opts.keepPartial === false) return
      // The cancel closed the stream: it holds all that will ever be written.
      const items: unknown[] = []
      let offset = "-1"
      for (;;) {
        const b = await this.client.readPage(`/v1/sessions/${encodeURIComponent(sessionId)}/stream`, offset)
        items.push(...b.items)
        if (b.closed || b.upToDate || b.offset === offset) break
        offset = b.offset
      }
      const parts = partsOfItems(items)
      if (!parts.length) return
      await this.client.messages.send(chatId, { role: "assistant", content: contentOf(parts), metadata: { session_id: sessionId, stopped: true } })
    })()
      .catch(() => {})
      .finally(() => this.stops.delete(p))
    this.stops.add(p)
  }
}
