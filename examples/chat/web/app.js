// web/app.js — the chat page, on @parley/client. No framework: a list of
// messages, a composer, and the one answer that may be streaming.
//
// The flow, and what each part of the SDK does in it:
//   send     messages.send(conv, {role: "user", content, process: true})
//            goes through the SDK's outbox (IndexedDB, one Idempotency-Key
//            for the write's whole life): a reload or a lost answer never
//            stores it twice. The answer carries the new session (the
//            assistant's turn), which the stand-in worker claims.
//   stream   sessions.stream(id, {offset: "-1"}) follows the turn's tokens
//            live and ends when the turn ends; {"type":"attempt"} means a
//            new attempt started (a worker died): what came before is
//            dropped. The answer is rebuilt from the stream's start, so
//            it can never show a token twice.
//   reload   the newest session of the conversation (sessions.list, limit
//            1): still pending or processing, it is followed again from
//            its start; finished, the stored messages already hold it.
//   stop     sessions.cancel(id) closes the token stream; what it holds
//            is then stored as an assistant message with metadata
//            {session_id, stopped: true} (through the outbox, so a reload
//            in between does not lose it).
//   share    snapshots.create({source, public: true}) freezes the
//            conversation; /s/{id} reads it with no token at all.
//
// Where the features still to come plug in (the server has no routes for
// them yet, so nothing here guesses at them):
//   - editing and regenerating, and the branch switcher: messageActions()
//     returns the buttons shown under a message (none yet); a branch
//     switcher is one more control there, and loadMessages() is where the
//     messages of the chosen branch are read.
//   - attachments: composerContent() builds what send() stores (text
//     only yet); an attachment picker adds its parts there, and
//     renderContent() shows them.
import { createClient, ParleyError } from "@parley/client"

const $ = (id) => document.getElementById(id)
const LIVE = new Set(["pending", "processing", "awaiting_input"])

/** The state of the page. */
const state = {
  parley: null, // the SDK client
  convId: null, // the open conversation, also in the URL (?c=)
  live: null, // the answer being streamed: {session, el, text, stopping}
}

/* ---- rendering ---------------------------------------------------------- */

function banner(text, isError = false) {
  const b = $("banner")
  b.hidden = !text
  b.textContent = text ?? ""
  b.classList.toggle("error", isError)
}

/** A message's content as text: a string, or the text parts of a list. */
function renderContent(content) {
  if (typeof content === "string") return content
  if (Array.isArray(content)) return content.map((p) => (typeof p === "string" ? p : (p?.text ?? ""))).join("")
  return JSON.stringify(content)
}

/** The buttons under a message (edit, regenerate, the branch switcher: to come). */
function messageActions(_message) {
  return []
}

function messageElement(role, text, extra = {}) {
  const li = document.createElement("li")
  li.className = `msg ${role}`
  const span = document.createElement("span")
  span.className = "text"
  span.textContent = text
  li.append(span)
  for (const [k, v] of Object.entries(extra)) li.dataset[k] = v
  return li
}

function renderMessage(m) {
  const li = messageElement(m.role, renderContent(m.content), { id: m.id, seq: String(m.seq) })
  if (m.metadata?.stopped) {
    li.dataset.stopped = "true"
    const note = document.createElement("span")
    note.className = "note"
    note.textContent = "stopped"
    li.append(note)
  }
  const actions = document.createElement("div")
  actions.className = "actions"
  actions.append(...messageActions(m))
  li.append(actions)
  return li
}

function scrollToEnd() {
  const main = document.querySelector("main")
  main.scrollTop = main.scrollHeight
}

/** Every stored message of the conversation. */
async function loadMessages(convId) {
  const out = []
  for await (const m of state.parley.messages.all(convId)) out.push(m)
  return out
}

/** Draw the stored messages, then the streaming answer (if any) after them. */
async function refresh() {
  if (!state.convId) return
  const convId = state.convId
  const messages = await loadMessages(convId)
  if (convId !== state.convId) return
  const list = $("messages")
  list.replaceChildren(...messages.map(renderMessage))
  if (state.live) list.append(state.live.el)
  scrollToEnd()
}

function setBusy(busy) {
  const b = $("send")
  b.textContent = busy ? "Stop" : "Send"
  b.classList.toggle("stop", busy)
  b.dataset.mode = busy ? "stop" : "send"
  $("share").disabled = !state.convId
}

function setConversation(id) {
  state.convId = id
  const url = id ? `/?c=${encodeURIComponent(id)}` : "/"
  if (location.pathname + location.search !== url) history.replaceState(null, "", url)
  $("share").disabled = !id
  $("share-box").hidden = true
}

/* ---- the answer: follow, stop ------------------------------------------- */

/** Follow a session's token stream from its start until the turn ends. */
async function follow(session) {
  if (state.live?.session.id === session.id) return
  const el = messageElement("assistant", "", { session: session.id })
  el.classList.add("streaming")
  const live = { session, el, text: "", stopping: null }
  state.live = live
  $("messages").append(el)
  setBusy(true)
  const text = el.querySelector(".text")
  try {
    for await (const item of state.parley.sessions.stream(session.id, { offset: "-1" })) {
      if (item?.type === "attempt") live.text = ""
      else if (item?.type === "delta" && typeof item.text === "string") live.text += item.text
      text.textContent = live.text
      scrollToEnd()
    }
  } catch (e) {
    if (!live.stopping) banner(`The answer stopped: ${e.message}`, true)
  } finally {
    await live.stopping
    if (state.live === live) state.live = null
    el.remove()
    setBusy(false)
    await refresh().catch((e) => banner(e.message, true))
  }
}

/** The stop button: cancel the turn and keep what was streamed so far. */
function stop() {
  const live = state.live
  if (!live || live.stopping) return
  const { parley, convId } = state
  live.stopping = (async () => {
    try {
      await parley.sessions.cancel(live.session.id)
    } catch (e) {
      // 409: the turn had already ended (completed, or stopped in another tab).
      if (e instanceof ParleyError && (e.status === 409 || e.status === 404)) return
      throw e
    }
    // The cancel closed the token stream: it holds all that will ever be written.
    let text = ""
    let offset = "-1"
    for (;;) {
      const page = await parley.readPage(`/v1/sessions/${encodeURIComponent(live.session.id)}/stream`, offset)
      for (const item of page.items) text = item?.type === "attempt" ? "" : text + (item?.type === "delta" ? item.text : "")
      if (page.closed || page.upToDate || page.offset === offset) break
      offset = page.offset
    }
    if (text) await parley.messages.send(convId, { role: "assistant", content: text, metadata: { session_id: live.session.id, stopped: true } })
  })().catch((e) => banner(`Stop failed: ${e.message}`, true))
}

/* ---- sending ---------------------------------------------------------- */

/** What send() stores for the composer's state (text now; attachments later). */
function composerContent(text) {
  return text
}

async function send(text) {
  const parley = state.parley
  if (!state.convId) {
    const conv = await parley.conversations.create({ title: text.slice(0, 60) })
    setConversation(conv.id)
  }
  const convId = state.convId
  $("messages").append(messageElement("user", text, { pending: "true" }))
  scrollToEnd()
  const m = await parley.messages.send(convId, { role: "user", content: composerContent(text), process: true })
  if (convId !== state.convId) return
  await refresh()
  if (m.session) follow(m.session)
}

async function share() {
  const snap = await state.parley.snapshots.create({ source: `/v1/conversations/${state.convId}`, public: true, expires_in: 7 * 86400 })
  $("share-link").value = `${location.origin}/s/${encodeURIComponent(snap.id)}`
  $("share-box").hidden = false
}

/* ---- pages ------------------------------------------------------------ */

/** The signed-in user: a random id kept in this browser (the app's sign-in would give it). */
function userId() {
  let id = localStorage.getItem("chat.user")
  if (!id) {
    id = `u-${crypto.randomUUID().slice(0, 13)}`
    localStorage.setItem("chat.user", id)
  }
  return id
}

async function chatPage(parleyUrl) {
  const user = userId()
  const token = async () => {
    const r = await fetch("/api/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }) })
    if (!r.ok) throw new Error(`sign-in failed: ${r.status}`)
    return (await r.json()).token
  }
  const parley = createClient({ baseUrl: parleyUrl, token, outboxName: `chat-outbox-${user}` })
  state.parley = parley
  // A write left in the outbox by an earlier page (a stop's partial answer,
  // a message sent just before a reload) is sent now; show it when it lands.
  parley.outbox.onSettled(() => refresh().catch(() => {}))

  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault()
    if (state.live) return stop()
    const text = $("input").value.trim()
    if (!text) return
    $("input").value = ""
    banner(null)
    send(text).catch((e) => banner(`Not sent: ${e.message}`, true))
  })
  $("input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault()
      $("composer").requestSubmit()
    }
  })
  $("new").addEventListener("click", () => {
    if (state.live) return
    setConversation(null)
    $("messages").replaceChildren()
    banner(null)
  })
  $("share").addEventListener("click", () => share().catch((e) => banner(`Share failed: ${e.message}`, true)))
  $("copy").addEventListener("click", () => {
    $("share-link").select()
    navigator.clipboard?.writeText($("share-link").value).catch(() => {})
  })

  setBusy(false)
  const convId = new URLSearchParams(location.search).get("c")
  if (!convId) return
  setConversation(convId)
  try {
    await refresh()
  } catch (e) {
    setConversation(null)
    banner(e instanceof ParleyError && e.status === 404 ? "That chat does not exist (or is someone else's)." : e.message, true)
    return
  }
  // A reload in the middle of an answer: follow it again from its start.
  const newest = (await parley.sessions.list(convId, { limit: 1 })).items[0]
  if (newest && LIVE.has(newest.status)) follow(newest)
}

/** /s/{id}: a shared snapshot, read with no token. */
async function sharePage(parleyUrl, id) {
  document.body.classList.add("shared")
  const anon = createClient({ baseUrl: parleyUrl, outbox: "memory", tabs: false })
  try {
    const snap = await anon.snapshots.get(id)
    const messages = [...(snap.content?.messages ?? [])]
    let cursor = snap.content?.next_cursor ?? null
    while (cursor) {
      const page = await anon.snapshots.messages(id, { cursor })
      messages.push(...page.items)
      cursor = page.next_cursor
    }
    document.title = `${snap.title ?? "A shared chat"} · Parley chat`
    banner(`A copy of "${snap.title ?? "a chat"}", shared on ${new Date(snap.created_at).toLocaleString()}.`)
    $("messages").replaceChildren(...messages.map(renderMessage))
  } catch (e) {
    banner(e instanceof ParleyError && e.status === 404 ? "This link does not work any more (the chat was unshared, or it expired)." : e.message, true)
  }
}

async function main() {
  const { parleyUrl } = await (await fetch("/api/config")).json()
  const shared = /^\/s\/([^/]+)$/.exec(location.pathname)
  if (shared) await sharePage(parleyUrl, decodeURIComponent(shared[1]))
  else await chatPage(parleyUrl)
  document.body.dataset.ready = "true"
}

main().catch((e) => banner(e.message, true))
