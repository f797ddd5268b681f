// worker/worker.mjs — the stand-in model worker, on the SDK's worker loop.
//
// runWorker (from @parley/client/worker) does the protocol: it claims the
// oldest pending session with the admin key (waiting on the change feed
// when there is none, never polling), heartbeats at a third of the lease,
// appends each write() to the session's token stream with Producer-Id /
// Producer-Epoch / Producer-Seq and Session-Attempt (so a retried append is
// stored once), then completes the session with what the handler returns,
// or fails it if the handler throws. When the user presses stop, the next
// append or heartbeat answers 409 (or the feed reports the cancel first):
// ctx.signal aborts, the handler stops, and nothing more is sent.
//
// This file only supplies the handler: find the user's message, then
// stream the stand-in model's tokens, one every `delayMs`.
import { createClient } from "@parley/client"
import { FileOutboxStore } from "@parley/client/node"
import { runWorker } from "@parley/client/worker"

import { answerTo } from "./model.mjs"

/** A message's text: a string, or its text parts (an attachment counts as its name). */
function textOf(content) {
  if (typeof content === "string") return content
  if (Array.isArray(content)) return content.map((p) => (typeof p === "string" ? p : p?.type === "blob" ? `[${p.name ?? "attachment"}]` : (p?.text ?? ""))).join(" ")
  return JSON.stringify(content)
}

/**
 * The text of the message that started this session: along the active
 * branch (where an edit or a regenerate just moved), else along each
 * branch in turn (the user switched away before the worker came).
 */
async function promptOf(parley, session) {
  const conv = session.conversation_id
  const find = async (branch) => {
    for await (const m of parley.messages.all(conv, 100, branch)) if (m.id === session.message_id) return textOf(m.content)
    return null
  }
  const found = await find(undefined)
  if (found !== null) return found
  for (const b of (await parley.branches.list(conv, { limit: 100 })).items) {
    const text = await find(b.id)
    if (text !== null) return text
  }
  return ""
}

/** Resolves after ms, or rejects when the signal aborts. */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = () => (clearTimeout(t), reject(signal.reason))
    const t = setTimeout(() => (signal.removeEventListener("abort", onAbort), resolve()), ms)
    signal.addEventListener("abort", onAbort, { once: true })
  })
}

/**
 * Start the worker loop. Options: parleyUrl, adminKey, outboxPath (the SDK's
 * file outbox, so a write in flight survives a restart of this process),
 * delayMs between tokens, words per answer, log (a function, or null).
 * Returns {stop()} which ends the loop and waits for it.
 */
export function startWorker({ parleyUrl, adminKey, outboxPath, delayMs = 60, words = 48, log = console.log }) {
  const parley = createClient({ baseUrl: parleyUrl, token: adminKey, outbox: outboxPath ? new FileOutboxStore(outboxPath) : "memory" })
  const stop = new AbortController()
  const handler = async ({ session, signal, write }) => {
    const tokens = answerTo(await promptOf(parley, session), words)
    let text = ""
    for (const token of tokens) {
      await pause(delayMs, signal)
      await write({ type: "delta", text: token })
      text += token
    }
    return { content: text, metadata: { model: "stand-in" } }
  }
  const loop = runWorker(parley, handler, {
    leaseSeconds: 30,
    signal: stop.signal,
    onTurn: (s, outcome, error) => log?.(`worker: session ${s.id} ${outcome}${error ? `: ${error}` : ""}`),
  }).catch((e) => {
    if (!stop.signal.aborted) log?.(`worker: stopped: ${e}`)
  })
  return {
    async stop() {
      stop.abort()
      await loop
      parley.close()
    },
  }
}
