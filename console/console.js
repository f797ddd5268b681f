// console.js — the Parley web console: a hand-written page over the same
// HTTP API any client uses, with the token the user signs in with (kept in
// sessionStorage; none in local mode). Views, by location hash:
//   #overview            a few numbers from /metrics
//   #conversations[/id]  conversations; one with its messages, live
//   #sessions[/id]       sessions of recent conversations; tokens streaming in
//   #documents[/coll]    collections seen in the feed; documents and versions
//   #snapshots[/id]      snapshots; one with its frozen messages
//   #blobs               uploaded blobs; image previews, downloads
//   #events              the change feed, live
// Live views read Server-Sent Events with fetch (EventSource cannot send
// an Authorization header) and resume from the last control offset.
// Everything shown is set as text, never as HTML.
"use strict"

const TOKEN_KEY = "parley.console.token"
const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  view: null, // AbortController of the current view's requests
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`)
    this.status = status
    this.code = body?.error?.code || ""
  }
}

// ---- DOM helpers ----------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === "text") el.textContent = v
    else if (k === "onclick") el.addEventListener("click", v)
    else el.setAttribute(k, v === true ? "" : String(v))
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid)
  return el
}

function when(iso) {
  if (!iso) return ""
  const d = new Date(iso)
  return isNaN(d) ? String(iso) : d.toLocaleString()
}

function show(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2)
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener("abort", () => {
      clearTimeout(t)
      resolve()
    })
  })
}

// ---- the API --------------------------------------------------------------

function authHeaders(extra) {
  const headers = new Headers(extra || {})
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`)
  return headers
}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: authHeaders(opts.headers), signal: opts.signal ?? state.view?.signal })
  const text = await res.text()
  let body = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    body = text
  }
  if (res.status === 401) signIn("The server refused the token: " + (body?.error?.message || "unauthorized"))
  if (!res.ok) throw new ApiError(res.status, body)
  return body
}

/**
 * Follow a JSON stream with SSE from offset: onItems(array) for each data
 * event, onState(text) as the connection comes and goes; reconnects from
 * the last offset until signal aborts or the stream is closed.
 */
async function follow(path, offset, signal, onItems, onState) {
  while (!signal.aborted) {
    try {
      const sep = path.includes("?") ? "&" : "?"
      const res = await fetch(`${path}${sep}offset=${encodeURIComponent(offset)}&live=sse`, { headers: authHeaders(), signal })
      if (res.status === 401) signIn("The server refused the token.")
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null))
      onState?.("live")
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      let buf = ""
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let end
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          let event = "message"
          const data = []
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim()
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""))
          }
          if (event === "data") {
            const items = JSON.parse(data.join("\n"))
            onItems(Array.isArray(items) ? items : [items])
          } else if (event === "control") {
            const c = JSON.parse(data.join("\n"))
            if (c.streamNextOffset) offset = c.streamNextOffset
            if (c.streamClosed) {
              onState?.("closed")
              return
            }
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return
      onState?.(e instanceof ApiError ? `stopped: ${e.message}` : "reconnecting")
      if (e instanceof ApiError && e.status < 500 && e.status !== 429) return
    }
    await sleep(1000, signal)
  }
}

function liveBadge() {
  const el = h("span", { class: "live", text: "connecting" })
  return {
    el,
    set(s) {
      el.textContent = s === "live" ? "● live" : s
      el.classList.toggle("off", s !== "live" && s !== "closed")
    },
  }
}

// ---- sign-in --------------------------------------------------------------

function signIn(why) {
  const panel = document.getElementById("signin")
  if (why) document.getElementById("signin-why").textContent = why
  panel.hidden = false
  document.getElementById("view").replaceChildren()
  state.view?.abort()
}

function showWho() {
  document.getElementById("who").textContent = state.token ? "signed in" : ""
  document.getElementById("signout").hidden = !state.token
}

function setupSignIn() {
  document.getElementById("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault()
    const input = document.getElementById("token")
    state.token = input.value.trim()
    input.value = ""
    sessionStorage.setItem(TOKEN_KEY, state.token)
    document.getElementById("signin").hidden = true
    showWho()
    route()
  })
  document.getElementById("signout").addEventListener("click", () => {
    state.token = ""
    sessionStorage.removeItem(TOKEN_KEY)
    showWho()
    signIn("Signed out.")
  })
}

// ---- views ----------------------------------------------------------------

function failure(e) {
  if (e?.name === "AbortError" || state.view?.signal.aborted) return null
  return h("p", { class: "error", text: e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e) })
}

async function viewOverview(root) {
  root.append(h("h2", { text: "Overview" }))
  let text
  try {
    const res = await fetch("/metrics", { headers: authHeaders(), signal: state.view.signal })
    if (res.status === 401) {
      root.append(h("p", { class: "muted", text: "Metrics need the admin key or the metrics token; this token cannot read them." }))
      return
    }
    if (!res.ok) throw new ApiError(res.status, null)
    text = await res.text()
  } catch (e) {
    root.append(failure(e) ?? "")
    return
  }
  const m = parseMetrics(text)
  const sum = (name, pred = () => true) => m.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0)
  const build = m.find((s) => s.name === "parley_build_info")?.labels ?? {}
  const start = sum("process_start_time_seconds")
  const mib = (b) => (b < 1048576 ? `${Math.round(b / 1024)} KiB` : `${(b / 1048576).toFixed(1)} MiB`)
  const stats = [
    ["version", build.version ?? "?"],
    ["store", build.store ?? "?"],
    ["uptime", start ? duration(Date.now() / 1000 - start) : "?"],
    ["requests", sum("parley_http_requests_total").toLocaleString()],
    ["5xx answers", sum("parley_http_requests_total", (l) => l.status === "5xx").toLocaleString()],
    ["open connections", sum("parley_http_connections")],
    ["live readers", sum("parley_live_subscribers", (l) => l.kind === "sse" || l.kind === "long_poll")],
    ["writer queue", sum("parley_writer_queue_depth")],
    ["writes", sum("parley_writer_writes_total").toLocaleString()],
    ["database", mib(sum("parley_store_database_bytes"))],
    ["memory (RSS)", mib(sum("process_resident_memory_bytes"))],
  ]
  root.append(
    h("div", { class: "stats", id: "stats" }, stats.map(([k, v]) => h("div", { class: "card stat", "data-key": k }, h("div", { class: "n", text: String(v) }), h("div", { class: "k", text: k })))),
    h("p", { class: "hint", text: "From /metrics (Prometheus text), read when this view opened." }),
  )
}

function duration(s) {
  s = Math.max(0, Math.floor(s))
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), mi = Math.floor((s % 3600) / 60)
  return d ? `${d} d ${hr} h` : hr ? `${hr} h ${mi} min` : `${mi} min ${s % 60} s`
}

/** Prometheus text → [{name, labels, value}] (comments and HELP/TYPE skipped). */
function parseMetrics(text) {
  const out = []
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const labels = {}
    for (const l of (m[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1")
    out.push({ name: m[1], labels, value: Number(m[4]) })
  }
  return out
}

async function viewConversations(root, id) {
  if (id) return viewConversation(root, id)
  root.append(h("h2", { text: "Conversations" }))
  const list = h("ul", { class: "list", id: "conversations" })
  const badge = liveBadge()
  root.append(h("div", { class: "bar" }, badge.el), list)
  const load = async () => {
    const page = await api("/v1/conversations?limit=50")
    list.replaceChildren(
      ...page.items.map((c) =>
        h(
          "li",
          { class: "card conv", "data-id": c.id },
          h("div", { class: "row" }, h("a", { class: "title", href: `#conversations/${encodeURIComponent(c.id)}`, text: c.title || "(untitled)" }), h("span", { class: "tag", text: `${c.message_count ?? 0} messages` })),
          h("div", { class: "row muted" }, h("span", { text: c.id }), h("span", { text: c.owner }), h("span", { text: when(c.updated_at) })),
        ),
      ),
    )
    if (!page.items.length) list.append(h("li", { class: "muted", text: "No conversations yet." }))
  }
  await load()
  // The list follows the feed: any conversation or message change reloads it.
  let timer = null
  follow("/v1/events", "now", state.view.signal, (events) => {
    if (!events.some((e) => /^(conversation|message)\./.test(e.type))) return
    clearTimeout(timer)
    timer = setTimeout(() => load().catch(() => {}), 200)
  }, badge.set)
}

function messageCard(m) {
  return h(
    "li",
    { class: `card msg ${m.role || ""}`, "data-seq": m.seq },
    h("div", { class: "row muted" }, h("span", { class: "tag", text: m.role || "?" }), h("span", { text: `#${m.seq ?? "?"}` }), h("span", { text: when(m.created_at) }), m.session_id ? h("a", { href: `#sessions/${encodeURIComponent(m.session_id)}`, text: "session" }) : null),
    h("div", { class: "content", text: show(m.content ?? m) }),
  )
}

async function viewConversation(root, id) {
  const c = await api(`/v1/conversations/${encodeURIComponent(id)}`)
  const badge = liveBadge()
  const list = h("ul", { class: "list", id: "messages" })
  root.append(
    h("p", {}, h("a", { href: "#conversations", text: "← Conversations" })),
    h("h2", { text: c.title || "(untitled)" }),
    h("div", { class: "row muted bar" }, h("span", { text: c.id }), h("span", { text: c.owner }), badge.el),
    list,
  )
  const seen = new Set()
  follow(`/v1/conversations/${encodeURIComponent(id)}/stream`, "-1", state.view.signal, (items) => {
    for (const m of items) {
      const key = m.id ?? m.seq
      if (key !== undefined && seen.has(key)) continue
      seen.add(key)
      list.append(messageCard(m))
    }
  }, badge.set)
}

function sessionText(el, items) {
  for (const it of items) {
    const t = typeof it === "string" ? it : typeof it?.text === "string" ? it.text : typeof it?.delta === "string" ? it.delta : typeof it?.textDelta === "string" ? it.textDelta : null
    if (t !== null) el.append(t)
    else if (it?.type && it.type !== "text-start" && it.type !== "text-end") el.append(h("span", { class: "tag", text: it.type }), " ")
  }
}

function sessionCard(s, streamIt) {
  const tokens = h("div", { class: "tokens", "data-session": s.id })
  const badge = liveBadge()
  const card = h(
    "li",
    { class: "card session", "data-id": s.id },
    h("div", { class: "row" }, h("a", { class: "title", href: `#sessions/${encodeURIComponent(s.id)}`, text: s.id }), h("span", { class: `tag ${s.status}`, text: s.status }), streamIt ? badge.el : null),
    h("div", { class: "row muted" }, h("a", { href: `#conversations/${encodeURIComponent(s.conversation_id)}`, text: s.conversation_id || "" }), h("span", { text: `attempt ${s.attempt ?? 1}` }), h("span", { text: when(s.updated_at || s.created_at) })),
    tokens,
  )
  if (streamIt) follow(`/v1/sessions/${encodeURIComponent(s.id)}/stream`, "-1", state.view.signal, (items) => sessionText(tokens, items), badge.set)
  return card
}

async function viewSessions(root, id) {
  if (id) {
    const s = await api(`/v1/sessions/${encodeURIComponent(id)}`)
    root.append(h("p", {}, h("a", { href: "#sessions", text: "← Sessions" })), h("h2", { text: "Session" }), h("ul", { class: "list", id: "sessions" }, sessionCard(s, true)))
    if (s.error) root.append(h("pre", { text: show(s.error) }))
    return
  }
  root.append(h("h2", { text: "Sessions" }), h("p", { class: "hint", text: "The sessions of the 20 most recently active conversations; the processing ones stream their tokens here as they come." }))
  const list = h("ul", { class: "list", id: "sessions" })
  root.append(list)
  const streaming = new Map() // session id → card, while processing
  const signal = state.view.signal
  while (!signal.aborted) {
    try {
      const convs = await api("/v1/conversations?limit=20")
      const all = []
      for (const c of convs.items) all.push(...(await api(`/v1/conversations/${encodeURIComponent(c.id)}/sessions?limit=10`)).items)
      all.sort((a, b) => String(b.updated_at || b.created_at).localeCompare(String(a.updated_at || a.created_at)))
      const cards = all.slice(0, 50).map((s) => {
        const live = s.status === "processing" || s.status === "awaiting_input"
        const old = streaming.get(s.id)
        if (old && live) return old
        if (old) streaming.delete(s.id) // its stream ends (closed) on its own
        // At most four streams at once: a browser opens six connections per host.
        const card = sessionCard(s, live && streaming.size < 4)
        if (live && streaming.size < 4) streaming.set(s.id, card)
        return card
      })
      list.replaceChildren(...cards)
      if (!cards.length) list.append(h("li", { class: "muted", text: "No sessions yet." }))
    } catch (e) {
      if (signal.aborted) return
      list.replaceChildren(failure(e) ?? "")
    }
    await sleep(2000, signal)
  }
}

async function viewDocuments(root, coll) {
  root.append(h("h2", { text: coll ? `Documents: ${coll}` : "Documents" }))
  const form = h("form", { class: "bar", id: "open-collection" }, h("label", { for: "collection", text: "Collection" }), h("input", { id: "collection", name: "collection", value: coll || "", pattern: "[a-z0-9_-]{1,64}", required: true }), h("button", { type: "submit", text: "Open" }))
  form.addEventListener("submit", (ev) => {
    ev.preventDefault()
    location.hash = `#documents/${encodeURIComponent(form.collection.value)}`
  })
  root.append(form)
  if (!coll) {
    // The collections are those the feed names (a catch-up read).
    const res = await fetch("/v1/events?offset=-1", { headers: authHeaders(), signal: state.view.signal })
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null))
    const names = new Set()
    for (const e of await res.json()) if (e.document?.collection) names.add(e.document.collection)
    root.append(h("h3", { text: "Collections in the feed" }), h("ul", { class: "list", id: "collections" }, [...names].sort().map((n) => h("li", { class: "card" }, h("a", { href: `#documents/${encodeURIComponent(n)}`, text: n })))))
    if (!names.size) root.append(h("p", { class: "muted", text: "No document changes in the feed yet." }))
    return
  }
  const page = await api(`/v1/documents/${encodeURIComponent(coll)}?limit=50`)
  root.append(
    h(
      "ul",
      { class: "list", id: "documents" },
      page.items.map((d) =>
        h(
          "li",
          { class: "card doc", "data-id": d.id },
          h("div", { class: "row" }, h("span", { class: "title", text: d.id }), h("span", { class: "tag", text: `version ${d.version}` }), h("span", { class: "muted", text: when(d.updated_at) })),
          h("div", { class: "muted", text: `checksum ${d.checksum}` }),
          h("pre", { text: show(d.data) }),
        ),
      ),
    ),
  )
  if (!page.items.length) root.append(h("p", { class: "muted", text: "No documents in this collection." }))
}

async function viewSnapshots(root, id) {
  if (id) {
    const s = await api(`/v1/snapshots/${encodeURIComponent(id)}`)
    const msgs = s.content?.messages ?? []
    root.append(
      h("p", {}, h("a", { href: "#snapshots", text: "← Snapshots" })),
      h("h2", { text: `Snapshot of ${s.content?.conversation?.title || s.source}` }),
      h("div", { class: "row muted bar" }, h("span", { text: s.id }), h("span", { class: "tag", text: s.public ? "public" : "private" }), h("span", { text: when(s.created_at) })),
      h("ul", { class: "list", id: "messages" }, msgs.map(messageCard)),
    )
    return
  }
  root.append(h("h2", { text: "Snapshots" }))
  const page = await api("/v1/snapshots?limit=50")
  root.append(
    h(
      "ul",
      { class: "list", id: "snapshots" },
      page.items.map((s) =>
        h(
          "li",
          { class: "card snap", "data-id": s.id },
          h("div", { class: "row" }, h("a", { class: "title", href: `#snapshots/${encodeURIComponent(s.id)}`, text: s.id }), h("span", { class: "tag", text: s.public ? "public" : "private" })),
          h("div", { class: "row muted" }, h("span", { text: s.source }), h("span", { text: when(s.created_at) }), s.expires_at ? h("span", { text: `expires ${when(s.expires_at)}` }) : null),
        ),
      ),
    ),
  )
  if (!page.items.length) root.append(h("p", { class: "muted", text: "No snapshots yet." }))
}

function bytes(n) {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

const PREVIEW_MAX = 4 * 1024 * 1024 // larger images are not fetched for a preview

/** A blob's bytes with the console's token, as an object URL the view revokes when it ends. */
async function blobUrl(id, signal) {
  const res = await fetch(`/v1/blobs/${encodeURIComponent(id)}`, { headers: authHeaders(), signal })
  if (!res.ok) throw new ApiError(res.status, null)
  const url = URL.createObjectURL(await res.blob())
  if (signal.aborted) URL.revokeObjectURL(url)
  else signal.addEventListener("abort", () => URL.revokeObjectURL(url))
  return url
}

function blobCard(b, signal) {
  const card = h("li", { class: "card blob", "data-id": b.id })
  const status = h("span", { class: "hint" })
  const download = h("button", {
    type: "button",
    class: "download",
    text: "Download",
    onclick: async () => {
      status.textContent = ""
      try {
        const a = h("a", { href: await blobUrl(b.id, signal), download: b.id.slice(0, 12) })
        document.body.append(a)
        a.click()
        a.remove()
      } catch (e) {
        if (e.name !== "AbortError") status.textContent = `Download failed: ${e.message}`
      }
    },
  })
  card.append(
    h("div", { class: "row" }, h("span", { class: "title mono", title: b.id, text: `${b.id.slice(0, 12)}…` }), h("span", { class: b.referenced ? "tag referenced" : "tag", text: b.referenced ? "referenced" : "unreferenced" })),
    h("div", { class: "row muted" }, h("span", { class: "size", text: bytes(b.size) }), h("span", { class: "type", text: b.content_type }), h("span", { text: when(b.created_at) })),
    h("div", { class: "row" }, download, status),
  )
  if (/^image\//i.test(b.content_type) && b.size <= PREVIEW_MAX) {
    const img = h("img", { class: "preview", alt: `preview of ${b.id.slice(0, 12)}` })
    card.append(img)
    blobUrl(b.id, signal).then(
      (url) => (img.src = url),
      (e) => {
        if (e.name !== "AbortError") img.replaceWith(h("p", { class: "hint", text: `No preview: ${e.message}` }))
      },
    )
  }
  return card
}

async function viewBlobs(root) {
  const signal = state.view.signal
  const list = h("ul", { class: "list", id: "blobs" })
  const more = h("button", { type: "button", id: "blobs-more", text: "More", hidden: true })
  root.append(h("h2", { text: "Blobs" }), h("p", { class: "hint", text: "Uploaded bytes, newest first. Referenced: a message, document or snapshot names it (an unreferenced blob is collected after the grace period)." }), list, more)
  let cursor = null
  const load = async () => {
    const page = await api(`/v1/blobs?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`)
    for (const b of page.items) list.append(blobCard(b, signal))
    cursor = page.next_cursor
    more.hidden = !cursor
    if (!list.children.length) root.append(h("p", { class: "muted", text: "No blobs yet." }))
  }
  more.addEventListener("click", () =>
    load().catch((e) => {
      const el = failure(e)
      if (el) root.append(el)
    }),
  )
  await load()
}

async function viewEvents(root) {
  const badge = liveBadge()
  const list = h("ul", { class: "list", id: "events" })
  root.append(h("h2", { text: "Events" }), h("div", { class: "bar" }, badge.el, h("span", { class: "hint", text: "The change feed, newest first (the last 200)." })), list)
  follow("/v1/events", "-1", state.view.signal, (events) => {
    for (const e of events) {
      const what = e.conversation_id || e.message_id || e.session_id || e.snapshot_id || (e.document && `${e.document.collection}/${e.document.id} v${e.document.version}`) || e.stream || ""
      list.prepend(h("li", { class: "card event" }, h("div", { class: "row" }, h("span", { class: "tag", text: e.type }), h("span", { text: show(what) })), h("div", { class: "row muted" }, h("span", { text: e.user || "" }), h("span", { text: when(e.at) }))))
    }
    while (list.children.length > 200) list.lastChild.remove()
  }, badge.set)
}

const views = {
  overview: viewOverview,
  conversations: viewConversations,
  sessions: viewSessions,
  documents: viewDocuments,
  snapshots: viewSnapshots,
  blobs: viewBlobs,
  events: viewEvents,
}

async function route() {
  state.view?.abort()
  state.view = new AbortController()
  const [name, ...rest] = location.hash.replace(/^#/, "").split("/")
  const view = views[name] ? name : "overview"
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : undefined
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.view === view)
  const root = document.getElementById("view")
  root.replaceChildren()
  root.dataset.view = view
  try {
    await views[view](root, arg)
  } catch (e) {
    const el = failure(e)
    if (el) root.append(el)
  }
}

// Whether the server wants a token (/console/config.json): without one
// stored, the sign-in form comes first, before any request could be refused.
async function start() {
  setupSignIn()
  showWho()
  window.addEventListener("hashchange", () => {
    if (document.getElementById("signin").hidden) route()
  })
  let auth = "token"
  try {
    auth = (await (await fetch("/console/config.json")).json()).auth
  } catch {
    // keep asking for a token
  }
  state.local = auth === "none"
  if (state.local) document.getElementById("who").textContent = "local mode"
  if (!state.local && !state.token) signIn()
  else route()
}

start()
