// The AI SDK integration against the real server and the real `ai`
// package: a Chat (the state behind useChat) with ParleyChatTransport on
// the user's side, the AI SDK's mock language model answering through
// streamTurn/answerChat on the server's side. The messages are stored; a
// reload in the middle of an answer resumes it with every token once; a
// connection lost mid-answer resumes by offset; stop cancels the session
// and keeps the partial answer; a retried attempt replaces what the failed
// one showed.
import assert from "node:assert/strict"
import { test } from "node:test"
import { AbstractChat, type ChatInit, type ChatState, type ChatStatus, streamText, type UIMessage } from "ai"
import { MockLanguageModelV4 } from "ai/test"

import { loadMessages, ParleyChatTransport } from "../src/ai.js"
import { answerChat, streamTurn } from "../src/ai-server.js"
import type { ParleyClient } from "../src/index.js"
import { runWorker } from "../src/worker.js"
import { createClient, mintJwt, sleep, startServer, until } from "./lib/server.js"

const ADMIN = "sdk-ai-admin"
const SECRET = "sdk-ai-secret"

/** The state useChat keeps, as plain arrays. */
class ArrayState implements ChatState<UIMessage> {
  status: ChatStatus = "ready"
  error: Error | undefined = undefined
  messages: UIMessage[]
  constructor(messages: UIMessage[] = []) {
    this.messages = messages
  }
  pushMessage = (m: UIMessage) => {
    this.messages = [...this.messages, m]
  }
  popMessage = () => {
    this.messages = this.messages.slice(0, -1)
  }
  replaceMessage = (i: number, m: UIMessage) => {
    this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)]
  }
  snapshot = <T>(t: T): T => structuredClone(t)
}

class Chat extends AbstractChat<UIMessage> {
  constructor({ messages, ...init }: ChatInit<UIMessage>) {
    super({ ...init, state: new ArrayState(messages) })
  }
}

const textOf = (m: UIMessage | undefined) => (m?.parts ?? []).map((p: any) => (p.type === "text" ? p.text : "")).join("")

const TOKENS = Array.from({ length: 24 }, (_, i) => `w${i} `)
const FULL = TOKENS.join("")

/** The AI SDK's mock model, streaming TOKENS one every delayMs; notes a cancel. */
function slowModel(delayMs: number, seen: { cancelled: boolean; calls: number }) {
  return new MockLanguageModelV4({
    doStream: async () => {
      seen.calls++
      let i = -2
      return {
        stream: new ReadableStream<any>({
          async pull(c) {
            if (i === -2) c.enqueue({ type: "stream-start", warnings: [] })
            else if (i === -1) c.enqueue({ type: "text-start", id: "t" })
            else if (i < TOKENS.length) {
              await sleep(delayMs)
              c.enqueue({ type: "text-delta", id: "t", delta: TOKENS[i] })
            } else {
              c.enqueue({ type: "text-end", id: "t" })
              c.enqueue({ type: "finish", finishReason: { unified: "stop", raw: "stop" }, usage: { inputTokens: { total: 5 }, outputTokens: { total: TOKENS.length } } })
              c.close()
            }
            i++
          },
          cancel() {
            seen.cancelled = true
          },
        }),
      }
    },
  })
}

async function setup(t: any) {
  const srv = await startServer(t, ["--admin-key", ADMIN, "--jwt-secret", SECRET])
  const token = mintJwt("alice", SECRET)
  const user = () => createClient({ baseUrl: srv.url, token, outbox: "memory", retry: { baseDelayMs: 20, maxDelayMs: 200 } })
  const admin = createClient({ baseUrl: srv.url, token: ADMIN, outbox: "memory", retry: { baseDelayMs: 20, maxDelayMs: 200 } })
  return { srv, user, admin }
}

/** A worker answering with streamText over the mock model, until the test ends. */
function startWorker(t: any, admin: ParleyClient, delayMs: number, seen = { cancelled: false, calls: 0 }, outcomes: string[] = [], errors: unknown[] = []) {
  const stop = new AbortController()
  t.after(() => stop.abort())
  const model = slowModel(delayMs, seen)
  const loop = runWorker(admin, streamTurn(admin, ({ messages, signal }) => {
    assert.equal(messages[messages.length - 1].role, "user")
    return streamText({ model, prompt: textOf(messages[messages.length - 1]), abortSignal: signal })
  }), { leaseSeconds: 30, signal: stop.signal, onTurn: (_s, o, e) => (outcomes.push(o), e !== undefined && errors.push(e)) })
  loop.catch((e) => errors.push(e))
  return { seen, outcomes, stop, errors }
}

test("ai - useChat's messages are stored in Parley; the answer streams in and completes the session", { timeout: 60_000 }, async (t) => {
  const { user, admin } = await setup(t)
  const { outcomes } = startWorker(t, admin, 5)
  const parley = user()
  const conv = await parley.conversations.create({ title: "ai" })
  const chat = new Chat({ id: conv.id, transport: new ParleyChatTransport({ client: parley }) })
  await chat.sendMessage({ text: "Plan a trip" })
  assert.equal(chat.status, "ready")
  assert.equal(chat.error, undefined)
  assert.deepEqual(chat.messages.map((m) => m.role), ["user", "assistant"])
  assert.equal(textOf(chat.messages[1]), FULL, "every token once, in order")
  const stored = (await parley.messages.list(conv.id)).items
  assert.deepEqual(stored.map((m) => [m.role, m.content]), [["user", "Plan a trip"], ["assistant", FULL]])
  const s = await parley.sessions.latest(conv.id)
  assert.equal(s.status, "completed")
  await until(() => outcomes.length === 1, 5000, "the turn's outcome")
  assert.deepEqual(outcomes, ["completed"])
  // The same conversation, loaded for a new page, is what useChat showed.
  const loaded = await loadMessages(parley, conv.id)
  assert.deepEqual(loaded.map((m) => [m.role, textOf(m)]), [["user", "Plan a trip"], ["assistant", FULL]])
})

test("ai - a reload in the middle of an answer resumes it (reconnectToStream): every token once", { timeout: 60_000 }, async (t) => {
  const { user, admin } = await setup(t)
  startWorker(t, admin, 80)
  // Page 1: send, see a few tokens, then the page goes away (no stop).
  const page1 = user()
  const conv = await page1.conversations.create({})
  const chat1 = new Chat({ id: conv.id, transport: new ParleyChatTransport({ client: page1 }) })
  const sending = chat1.sendMessage({ text: "long answer please" })
  await until(() => textOf(chat1.messages[1]).length >= 3 * 4, 20_000, "a few tokens on page 1")
  const seenBefore = textOf(chat1.messages[1])
  page1.close()
  await sending.catch(() => {})
  assert.ok(seenBefore.length < FULL.length, "the reload came mid-answer")

  // Page 2: messages from Parley, then useChat's resume.
  const page2 = user()
  const initial = await loadMessages(page2, conv.id)
  assert.deepEqual(initial.map((m) => m.role), ["user"], "the answer is not a message yet")
  const transport = new ParleyChatTransport({ client: page2 })
  const deltas: string[] = []
  const chat2 = new Chat({
    id: conv.id,
    messages: initial,
    transport: {
      resumeStreamIsReplay: transport.resumeStreamIsReplay,
      sendMessages: (o) => transport.sendMessages(o),
      reconnectToStream: async (o) => {
        const s = await transport.reconnectToStream(o)
        // Count what the page reads.
        return s && s.pipeThrough(new TransformStream({ transform: (c: any, ctl) => (c.type === "text-delta" && deltas.push(c.delta), ctl.enqueue(c)) }))
      },
    },
  })
  await chat2.resumeStream()
  assert.equal(chat2.error, undefined)
  assert.deepEqual(chat2.messages.map((m) => m.role), ["user", "assistant"])
  assert.equal(textOf(chat2.messages[1]), FULL)
  assert.deepEqual(deltas, TOKENS, "each token read once by the new page")
  const stored = (await page2.messages.list(conv.id)).items
  assert.deepEqual(stored.map((m) => [m.role, m.content]), [["user", "long answer please"], ["assistant", FULL]])
  // Once the answer is complete, there is nothing to resume.
  assert.equal(await transport.reconnectToStream({ chatId: conv.id }), null)
})

test("ai - a connection lost mid-answer (server killed and restarted) resumes by offset: every token once", { timeout: 60_000 }, async (t) => {
  const { srv, user, admin } = await setup(t)
  const w = startWorker(t, admin, 40)
  const parley = user()
  const conv = await parley.conversations.create({})
  const deltas: string[] = []
  const inner = new ParleyChatTransport({ client: parley })
  const chat = new Chat({
    id: conv.id,
    transport: {
      sendMessages: async (o) => (await inner.sendMessages(o)).pipeThrough(new TransformStream({ transform: (c: any, ctl) => (c.type === "text-delta" && deltas.push(c.delta), ctl.enqueue(c)) })),
      reconnectToStream: (o) => inner.reconnectToStream(o),
    },
  })
  const sending = chat.sendMessage({ text: "x" })
  await until(() => deltas.length >= 4 || chat.error || w.errors.length, 20_000, "tokens flowing")
  assert.deepEqual([chat.error, w.errors], [undefined, []])
  await srv.kill9()
  await sleep(200)
  await srv.start()
  await sending
  assert.equal(chat.error, undefined)
  assert.deepEqual(deltas, TOKENS, "nothing missed, nothing repeated")
  assert.equal(textOf(chat.messages[1]), FULL)
})

test("ai - stop cancels the session, stops the model and keeps the partial answer in Parley", { timeout: 60_000 }, async (t) => {
  const { user, admin } = await setup(t)
  const { seen, outcomes } = startWorker(t, admin, 80)
  const parley = user()
  const conv = await parley.conversations.create({})
  const transport = new ParleyChatTransport({ client: parley })
  const chat = new Chat({ id: conv.id, transport })
  const sending = chat.sendMessage({ text: "stop me" })
  await until(() => textOf(chat.messages[1]).length >= 4 * 4, 20_000, "some tokens")
  await chat.stop()
  await sending
  await transport.settled()
  const shown = textOf(chat.messages[1])
  assert.ok(shown.length > 0 && shown.length < FULL.length, "the partial answer stays on screen")
  const s = await parley.sessions.latest(conv.id)
  assert.equal(s.status, "cancelled")
  await until(() => outcomes.length === 1, 5000, "the worker's turn ended")
  assert.deepEqual(outcomes, ["cancelled"])
  assert.ok(seen.cancelled, "the model's stream was cancelled")
  const stored = (await parley.messages.list(conv.id)).items
  assert.deepEqual(stored.map((m) => m.role), ["user", "assistant"])
  const partial = stored[1].content as string
  assert.ok(FULL.startsWith(partial) && partial.length < FULL.length, `a prefix of the answer: ${JSON.stringify(partial)}`)
  assert.ok(partial.startsWith(shown), "it holds at least what was shown")
  assert.deepEqual(stored[1].metadata, { session_id: s.id, stopped: true })
  // A new page shows it, and there is nothing to resume.
  assert.deepEqual((await loadMessages(parley, conv.id)).map((m) => textOf(m)), ["stop me", partial])
  assert.equal(await transport.reconnectToStream({ chatId: conv.id }), null)
})

test("ai - a route handler answers with answerChat (the transport's api), and a retried attempt replaces what the failed one showed", { timeout: 60_000 }, async (t) => {
  const { user, admin } = await setup(t)
  const seen = { cancelled: false, calls: 0 }
  const model = slowModel(2, seen)
  const routed: string[] = []
  const parley = user()
  const conv = await parley.conversations.create({})
  // The "route": the first call writes a token and loses its lease (it stops
  // heartbeating); the session goes back to pending as attempt 2, which the
  // second call answers in full.
  const api = async ({ chatId, sessionId }: { chatId: string; sessionId: string }) => {
    routed.push(sessionId)
    const s = await admin.sessions.claim({ conversation_id: chatId, lease_seconds: 1 })
    assert.equal(s!.id, sessionId)
    await admin.transport.request({
      method: "POST",
      path: `/v1/sessions/${sessionId}/stream`,
      body: JSON.stringify([{ type: "delta", text: "stale words " }]),
      headers: { "Content-Type": "application/json", "Session-Attempt": "1" },
    })
    await until(async () => (await admin.sessions.get(sessionId)).attempt === 2, 10_000, "attempt 2")
    const turns = await answerChat(admin, chatId, ({ messages, signal }) => streamText({ model, messages: [{ role: "user", content: textOf(messages[messages.length - 1]) }], abortSignal: signal }))
    assert.deepEqual(turns.map((x) => x.outcome), ["completed"])
  }
  const chat = new Chat({ id: conv.id, transport: new ParleyChatTransport({ client: parley, api }) })
  await chat.sendMessage({ text: "hello" })
  assert.equal(chat.error, undefined)
  assert.equal(routed.length, 1)
  assert.equal(textOf(chat.messages[1]), FULL, "the stale attempt's words are gone")
  assert.equal(seen.calls, 1)
  const stored = (await parley.messages.list(conv.id)).items
  assert.deepEqual(stored.map((m) => [m.role, m.content]), [["user", "hello"], ["assistant", FULL]])
})
