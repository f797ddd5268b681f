// ai-server.ts — answer Parley sessions with the AI SDK's streamText.
// Entry point "@parley/client/ai-server" (Node or any server runtime; it
// imports `ai` at run time).
//
//   answerChat(parley, chatId, ({ messages, signal }) => streamText(…))   // a route handler
//   runWorker(parley, streamTurn(parley, ({ messages, signal }) => streamText(…)))   // a worker
//
// streamTurn is a runTurn handler (worker.ts: claim, heartbeat, fencing by
// attempt, cancel seen at once):
//   1. the conversation's messages up to the session's, as UIMessages;
//   2. the caller's function makes the answer: a streamText result (its
//      `stream` goes through the AI SDK's toUIMessageStream) or a
//      ReadableStream of UIMessageChunks;
//   3. every chunk is appended to the session's token stream with producer
//      headers, exactly once: chunks that come while an append is in
//      flight go together in the next one, so a fast model costs few
//      requests and a slow one adds no delay;
//   4. the answer (the message the chunks add up to) completes the session;
//      an `error` chunk fails it with its text.
// A cancel or a lost lease aborts `signal` (give it to streamText) and
// cancels the model's stream, so the model stops too.
import { readUIMessageStream, toUIMessageStream, type UIMessage, type UIMessageChunk, type UIMessageStreamOptions } from "ai"

import { contentOf, toUIMessage } from "./ai.js"
import type { ParleyClient } from "./client.js"
import { newKey } from "./outbox.js"
import type { Session } from "./types.js"
import { runTurn, type TurnHandler, type TurnOutcome, type WorkerOptions } from "./worker.js"

export interface AnswerArgs {
  session: Session
  /** The conversation up to and including the message this session answers. */
  messages: UIMessage[]
  /** Aborts on cancel or a lost lease: pass it to streamText as abortSignal. */
  signal: AbortSignal
  attempt: number
}

/** What makes the answer: a streamText result, or a stream of UIMessageChunks. */
export type AnswerSource = { stream: ReadableStream<any> } | ReadableStream<UIMessageChunk>
export type AnswerFn = (args: AnswerArgs) => AnswerSource | Promise<AnswerSource>

export interface StreamTurnOptions {
  /** Options for toUIMessageStream (sendReasoning, messageMetadata, onError, …). */
  ui?: Omit<UIMessageStreamOptions<UIMessage>, "onEnd" | "onFinish" | "originalMessages">
}

/** The conversation's messages up to the session's own, as UIMessages. */
export async function historyOf(client: ParleyClient, session: Session): Promise<UIMessage[]> {
  const out: UIMessage[] = []
  for await (const m of client.messages.all(session.conversation_id)) {
    const u = toUIMessage(m)
    if (u) out.push(u)
    if (m.id === session.message_id) break
  }
  return out
}

/** A runTurn/runWorker handler that answers with the AI SDK. */
export function streamTurn(client: ParleyClient, fn: AnswerFn, opts: StreamTurnOptions = {}): TurnHandler {
  return async (ctx) => {
    const messages = await historyOf(client, ctx.session)
    const src = await fn({ session: ctx.session, messages, signal: ctx.signal, attempt: ctx.attempt })
    const chunks: ReadableStream<UIMessageChunk> = src instanceof ReadableStream ? src : toUIMessageStream({ stream: src.stream, ...opts.ui })

    // A copy of the chunks for the AI SDK to build the final message from.
    let copy!: ReadableStreamDefaultController<UIMessageChunk>
    const built = (async () => {
      let last: UIMessage | undefined
      const s = new ReadableStream<UIMessageChunk>({ start: (c) => void (copy = c) })
      for await (const m of readUIMessageStream<UIMessage>({ stream: s, onError: () => {} })) last = m
      return last
    })()
    built.catch(() => {})

    let errorText: string | null = null
    let pending: UIMessageChunk[] = []
    let flushing: Promise<void> | null = null
    let failed: unknown = null
    const flush = async () => {
      while (pending.length && !failed) {
        const batch = pending
        pending = []
        await ctx.writeMany(batch)
      }
    }
    const kick = () => {
      if (flushing) return
      flushing = flush()
        .catch((e) => void (failed = e))
        .finally(() => (flushing = null))
    }
    const reader = chunks.getReader()
    // A model that is slow to answer is cut at once, even if fn did not pass the signal on.
    const cut = () => void reader.cancel(ctx.signal.reason).catch(() => {})
    ctx.signal.addEventListener("abort", cut, { once: true })
    try {
      for (;;) {
        if (failed) throw failed
        if (ctx.signal.aborted) throw ctx.signal.reason
        const { value, done } = await reader.read()
        if (done) break
        if (value.type === "error") errorText = (value as any).errorText ?? "the model failed"
        copy.enqueue(value)
        pending.push(value)
        kick()
      }
      if (ctx.signal.aborted) throw ctx.signal.reason
      while (flushing) await flushing
      if (failed) throw failed
      await flush()
      copy.close()
    } catch (e) {
      copy.error(e)
      await reader.cancel(e).catch(() => {})
      throw e
    } finally {
      ctx.signal.removeEventListener("abort", cut)
    }
    if (errorText !== null) throw new Error(errorText)
    const answer = await built
    const parts = answer?.parts ?? []
    return { content: contentOf(parts), metadata: typeof answer?.metadata === "object" && answer.metadata && !Array.isArray(answer.metadata) ? (answer.metadata as Record<string, unknown>) : {} }
  }
}

export interface AnswerChatOptions extends StreamTurnOptions, WorkerOptions {
  /** At most this many sessions answered per call (default 8). */
  max?: number
}

/**
 * For a route handler: claim the conversation's pending sessions one by
 * one and answer each (heartbeats, exactly-once appends, complete or fail).
 * Resolves when none is pending; with each session's outcome.
 */
export async function answerChat(client: ParleyClient, conversationId: string, fn: AnswerFn, opts: AnswerChatOptions = {}): Promise<{ session: string; outcome: TurnOutcome }[]> {
  const out: { session: string; outcome: TurnOutcome }[] = []
  const handler = streamTurn(client, fn, opts)
  for (let i = 0; i < (opts.max ?? 8); i++) {
    const claimed = await client.transport.request<Session | null>({
      method: "POST",
      path: "/v1/sessions/claim",
      json: { conversation_id: conversationId, lease_seconds: opts.leaseSeconds ?? 60 },
      idempotencyKey: newKey(),
      signal: opts.signal,
    })
    const session = claimed.data
    if (!session) break
    out.push({ session: session.id, outcome: await runTurn(client, session, handler, opts) })
  }
  return out
}
