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
//   edit     branches.edit(conv, userMessage, {content, process: true})
//            makes a sibling of the message on a new, active branch and a
//            session that answers it there.
//   regen    branches.regenerate(conv, assistantMessage) makes a new,
//            active branch whose answer becomes the old answer's sibling.
//   switch   loadMessages() is one messages request: the active branch's
//            messages, each with its `siblings` ({index, count, ids,
//            branches}); the "< 2/3 >" arrows call branches.activate() with
//            the branch that shows the neighbour, then read again.
//   attach   the picked files are uploaded with blobs.upload() (raw bytes,
//            Content-Length) before the message is sent; the message holds
//            {"type":"blob","id",...} parts. In the chat an image is read
//            with the user's token (blobs.download → an object URL); in a
//            shared copy straight from the snapshot's public blob URL.
import { createClient, ParleyError } from "@parley/client"

const $ = (id) => document.getElementById(id)
const LIVE = new Set(["pending", "processing", "awaiting_input"])

/** The state of the page. */
const state = {
  parley: null, // the SDK client
  convId: null, // the open conversation, also in the URL (?c=)
  live: null, // the answer being streamed: {session, el, text, stopping}
  files: [], // the files picked for the next message
  shareId: null, // on /s/{id}: the snapshot shown (its blobs are public)
  blobUrls: new Map(), // blob id → Promise of an object URL (the chat page)
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
  if (Array.isArray(content)) return content.map((p) => (typeof p === "string" ? p : p?.type === "blob" ? "" : (p?.text ?? ""))).join("")
  return JSON.stringify(content)
}

/** The blob parts of a message's content. */
function blobParts(content) {
  return Array.isArray(content) ? content.filter((p) => p?.type === "blob" && typeof p.id === "string") : []
}

/** Where an image's bytes are read: the public snapshot URL, or the user's own (token) read. */
function blobSrc(id) {
  if (state.shareId) return Promise.resolve(state.parley.snapshots.blobUrl(state.shareId, id))
  let url = state.blobUrls.get(id)
  if (!url) {
    url = state.parley.blobs.download(id).then((b) => URL.createObjectURL(b))
    url.catch(() => state.blobUrls.delete(id))
    state.blobUrls.set(id, url)
  }
  return url
}

/** The attachments of a message: images inline, other files by name. */
function renderAttachments(content) {
  return blobParts(content).map((p) => {
    const isImage = /^image\//.test(p.content_type ?? "")
    const el = document.createElement(isImage ? "img" : "span")
    el.className = "attachment"
    el.dataset.blob = p.id
    if (isImage) {
      el.alt = p.name ?? "image"
      blobSrc(p.id).then(
        (src) => (el.src = src),
        (e) => banner(`An attachment did not load: ${e.message}`, true),
      )
    } else el.textContent = `[${p.name ?? "file"}]`
    return el
  })
}

function button(label, action, onClick, title) {
  const b = document.createElement("button")
  b.type = "button"
  b.textContent = label
  b.dataset.action = action
  if (title) b.title = title
  b.disabled = !!state.live
  b.addEventListener("click", () => {
    if (state.live) return
    banner(null)
    onClick().catch((e) => banner(`${title ?? label} failed: ${e.message}`, true))
  })
  return b
}

/** The buttons under a message: edit (user), regenerate (assistant), the "< 2/3 >" switcher. */
function messageActions(m, index) {
  if (state.shareId) return []
  const out = []
  const convId = state.convId
  const sib = m.siblings
  if (sib && sib.count > 1) {
    const box = document.createElement("span")
    box.className = "switcher"
    const go = (i) => async () => {
      await state.parley.branches.activate(convId, sib.branches[i - 1])
      await refresh()
    }
    const prev = button("<", "prev", go(sib.index - 1), "Previous version")
    const next = button(">", "next", go(sib.index + 1), "Next version")
    prev.disabled ||= sib.index <= 1
    next.disabled ||= sib.index >= sib.count
    const count = document.createElement("span")
    count.className = "count"
    count.textContent = `${sib.index}/${sib.count}`
    box.append(prev, count, next)
    out.push(box)
  }
  if (m.role === "user") out.push(button("Edit", "edit", async () => startEdit(m), "Edit"))
  if (m.role === "assistant" && index > 0 && !m.metadata?.stopped)
    out.push(
      button("Regenerate", "regenerate", async () => {
        const r = await state.parley.branches.regenerate(convId, m.id)
        await refresh()
        follow(r.session)
      }, "Regenerate"),
    )
  return out
}

/** Turn a user message into an editor; Save sends the edit (a new branch) and follows its answer. */
function startEdit(m) {
  const li = document.querySelector(`.msg[data-id="${CSS.escape(m.id)}"]`)
  if (!li || li.querySelector(".editor")) return
  const form = document.createElement("form")
  form.className = "editor"
  const area = document.createElement("textarea")
  area.value = renderContent(m.content)
  area.rows = 2
  area.setAttribute("aria-label", "Edit the message")
  const save = document.createElement("button")
  save.type = "submit"
  save.textContent = "Save"
  save.dataset.action = "save"
  const cancel = document.createElement("button")
  cancel.type = "button"
  cancel.textContent = "Cancel"
  cancel.addEventListener("click", () => refresh().catch((e) => banner(e.message, true)))
  form.append(area, save, cancel)
  form.addEventListener("submit", (ev) => {
    ev.preventDefault()
    const text = area.value.trim()
    if (!text || state.live) return
    save.disabled = true
    ;(async () => {
      // Keep the message's attachments; only its text changes.
      const parts = blobParts(m.content)
      const content = parts.length ? [{ type: "text", text }, ...parts] : text
      const e = await state.parley.branches.edit(state.convId, m.id, { content, process: true })
      await refresh()
      if (e.session) follow(e.session)
    })().catch((e) => banner(`Edit failed: ${e.message}`, true))
  })
  li.querySelector(".text").replaceWith(form)
  li.querySelector(".actions").replaceChildren()
  area.focus()
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

function renderMessage(m, index) {
  const li = messageElement(m.role, renderContent(m.content), { id: m.id, seq: String(m.seq) })
  const attachments = renderAttachments(m.content)
  if (attachments.length) {
    const box = document.createElement("div")
    box.className = "attachments"
    box.append(...attachments)
    li.append(box)
  }
  if (m.metadata?.stopped) {
    li.dataset.stopped = "true"
    const note = document.createElement("span")
    note.className = "note"
    note.textContent = "stopped"
    li.append(note)
  }
  const actions = document.createElement("div")
  actions.className = "actions"
  actions.append(...messageActions(m, index))
  li.append(actions)
  return li
}

function scrollToEnd() {
  const main = document.querySelector("main")
  main.scrollTop = main.scrollHeight
}

/**
 * The active branch's messages, each with its `siblings` (one request for
 * up to 100 messages; the switcher needs nothing more).
 */
async function loadMessages(convId) {
  const out = []
  for await (const m of state.parley.messages.all(convId)) out.push(m)
  return out
}

/**
 * Draw the stored messages, then the streaming answer (if any) after them.
 * Calls in the same turn (a write's caller and the outbox's onSettled
 * listener) share one read.
 */
let refreshing = null
function refresh() {
  refreshing ??= new Promise((r) => setTimeout(r, 0)).then(() => {
    refreshing = null
    return draw()
  })
  return refreshing
}

async function draw() {
  if (!state.convId) return
  const convId = state.convId
  const messages = await loadMessages(convId)
  if (convId !== state.convId) return
  const list = $("messages")
  list.replaceChildren(...messages.map((m, i) => renderMessage(m, i)))
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

/** Show the picked files above the composer. */
function drawFiles() {
  const box = $("files")
  box.hidden = !state.files.length
  box.replaceChildren(
    ...state.files.map((f, i) => {
      const chip = document.createElement("span")
      chip.className = "file"
      chip.textContent = f.name
      const x = document.createElement("button")
      x.type = "button"
      x.textContent = "×"
      x.title = `Remove ${f.name}`
      x.addEventListener("click", () => {
        state.files.splice(i, 1)
        drawFiles()
      })
      chip.append(x)
      return chip
    }),
  )
}

/**
 * What send() stores: the text alone, or, with attachments, a text part
 * and one blob part per file (each uploaded first; the same bytes twice
 * are one blob).
 */
async function composerContent(text, files) {
  if (!files.length) return text
  const parts = text ? [{ type: "text", text }] : []
  for (const f of files) {
    const b = await state.parley.blobs.upload(f, { contentType: f.type || undefined })
    parts.push({ type: "blob", id: b.id, content_type: b.content_type, name: f.name })
  }
  return parts
}

async function send(text, files = []) {
  const parley = state.parley
  if (!state.convId) {
    const conv = await parley.conversations.create({ title: (text || files[0]?.name || "").slice(0, 60) })
    setConversation(conv.id)
  }
  const convId = state.convId
  $("messages").append(messageElement("user", text || files.map((f) => f.name).join(", "), { pending: "true" }))
  scrollToEnd()
  const content = await composerContent(text, files)
  const m = await parley.messages.send(convId, { role: "user", content, process: true })
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
    const files = state.files
    if (!text && !files.length) return
    $("input").value = ""
    state.files = []
    drawFiles()
    banner(null)
    send(text, files).catch((e) => banner(`Not sent: ${e.message}`, true))
  })
  $("input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault()
      $("composer").requestSubmit()
    }
  })
  $("attach").addEventListener("click", () => $("file").click())
  $("file").addEventListener("change", () => {
    state.files.push(...$("file").files)
    $("file").value = ""
    drawFiles()
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
  state.parley = anon
  state.shareId = id
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
    $("messages").replaceChildren(...messages.map((m, i) => renderMessage(m, i)))
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
