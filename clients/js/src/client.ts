// client.ts — the typed API over Parley's HTTP routes.
//
// ParleyClient wires the three mechanisms together and names the routes:
//   - reads go straight through the Transport (retried, token refreshed);
//   - every write (POST, PATCH, PUT, DELETE) goes through the Outbox, so it
//     has one Idempotency-Key for its whole life, survives a reload where
//     the outbox is persisted, and is applied once;
//   - streams (the feed, a conversation's log, a session's tokens) are read
//     by live subscriptions that resume by offset; the feed is shared
//     between tabs by default in a browser.
//
// Parley applies an Idempotency-Key on POST and PATCH. PUT and DELETE are
// idempotent by themselves: a DELETE retried after a lost answer resolves
// (the object is gone either way), and Documents.update() recognises its
// own PUT when a retry meets 412.
//
// Branches (edit, regenerate, activate) and blob signed URLs are writes
// through the outbox like the others. A blob upload carries bytes, which
// the outbox (JSON text) does not persist: it gets one Idempotency-Key for
// its whole life and is retried by the transport with that key, so a lost
// answer replays the first one; the blob id is the bytes' SHA-256, so even
// a fresh upload of the same bytes answers the blob already there.
import { hasIndexedDB, IndexedDBOutboxStore } from "./outbox-idb.js"
import { MemoryOutboxStore, newKey, Outbox, type OutboxStore } from "./outbox.js"
import { type Batch, type BatchSource, liveBatches, type SubscribeOptions, Subscription } from "./live.js"
import { canShareTabs, sharedSource, type TabOptions } from "./tabs.js"
import { type Answer, ParleyError, Transport, type TransportOptions, anySignal, backoffDelay, sleep } from "./transport.js"
import type { BlobInfo, Branch, Conversation, Doc, FeedEvent, Message, Page, SearchHit, Session, SessionStatus, Snapshot } from "./types.js"

export interface ClientOptions extends TransportOptions {
  /**
   * Where pending writes are kept: an OutboxStore, "indexeddb" (the default
   * where IndexedDB exists) or "memory" (the default elsewhere; in Node,
   * FileOutboxStore from "@parley/client/node" keeps them in a file).
   */
  outbox?: OutboxStore | "indexeddb" | "memory"
  /** The IndexedDB database name (default "parley-outbox"). */
  outboxName?: string
  /**
   * Share the feed's connection between tabs: true/false, or options for the
   * election (names, injected locks/channel for tests). Default: on where
   * there is a document and BroadcastChannel, off elsewhere (Node).
   */
  tabs?: boolean | Partial<TabOptions>
}

export interface ListOptions {
  limit?: number
  cursor?: string | null
}

export interface LiveOptions extends SubscribeOptions {
  /** Share this subscription's connection with other tabs (feed default: auto). */
  shared?: boolean
}

const enc = encodeURIComponent

function query(params: Record<string, unknown>): string {
  const q = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${enc(String(v))}`)
    .join("&")
  return q ? `?${q}` : ""
}

export class ParleyClient {
  readonly transport: Transport
  readonly outbox: Outbox
  readonly conversations: Conversations
  readonly messages: Messages
  readonly sessions: Sessions
  readonly documents: Documents
  readonly snapshots: Snapshots
  readonly feed: Feed
  readonly streams: Streams
  readonly branches: Branches
  readonly blobs: Blobs
  readonly search: Search
  private readonly tabs: boolean | Partial<TabOptions> | undefined

  constructor(opts: ClientOptions) {
    this.transport = new Transport(opts)
    let store = opts.outbox
    if (store === undefined) store = hasIndexedDB() ? "indexeddb" : "memory"
    if (store === "indexeddb") store = new IndexedDBOutboxStore(opts.outboxName)
    else if (store === "memory") store = new MemoryOutboxStore()
    this.outbox = new Outbox(this.transport, store)
    this.tabs = opts.tabs
    this.conversations = new Conversations(this)
    this.messages = new Messages(this)
    this.sessions = new Sessions(this)
    this.documents = new Documents(this)
    this.snapshots = new Snapshots(this)
    this.feed = new Feed(this)
    this.streams = new Streams(this)
    this.branches = new Branches(this)
    this.blobs = new Blobs(this)
    this.search = new Search(this)
  }

  /** GET a path; rejects a ParleyError for any status not in `accept` or 2xx. */
  async get<T = any>(path: string, accept?: number[], headers?: Record<string, string>): Promise<Answer<T>> {
    return this.transport.request<T>({ method: "GET", path, accept, headers })
  }

  /** A write through the outbox (one Idempotency-Key for its whole life). */
  async write<T = any>(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<Answer<T>> {
    return this.outbox.enqueue(method, path, json, headers)
  }

  /** One non-live page of a JSON stream from offset. */
  async readPage<T = any>(path: string, offset: string, signal?: AbortSignal): Promise<Batch<T>> {
    const a = await this.transport.request({ method: "GET", path: `${path}${path.includes("?") ? "&" : "?"}offset=${enc(offset)}`, signal })
    const h = a.headers
    return {
      items: Array.isArray(a.data) ? a.data : a.data == null ? [] : [a.data],
      from: offset,
      offset: h.get("stream-next-offset") ?? offset,
      upToDate: h.get("stream-up-to-date") === "true",
      closed: h.get("stream-closed") === "true",
    }
  }

  /** Follow a JSON stream live from opts.offset (default "-1"). */
  subscribe<T = any>(path: string, opts: LiveOptions = {}, onItem?: (item: T, sub: Subscription<T>) => void): Subscription<T> {
    let source: BatchSource<T> = (offset: string, signal: AbortSignal) => liveBatches<T>(this.transport, path, offset, opts, signal)
    const t = this.tabs
    if (opts.shared ?? (t === undefined ? canShareTabs() : t !== false)) {
      const o = typeof t === "object" ? t : {}
      source = sharedSource<T>(source, (off, signal) => this.readPage<T>(path, off, signal), {
        name: async () => `parley:${this.transport.baseUrl}${path}:${subjectOf(await this.transport.getToken())}`,
        locks: (globalThis as any).navigator?.locks ?? null,
        ...o,
      })
    }
    const sub = new Subscription<T>(source, { ...opts, signal: anySignal(opts.signal, this.transport.closedSignal) })
    if (onItem) sub.listen(onItem)
    return sub
  }

  /**
   * Stop everything this client runs: the outbox (pending writes stay
   * stored, to be sent by the next client on the same store), every
   * subscription, every call in flight and every retry wait, and a
   * runWorker loop on this client.
   */
  close(): void {
    this.outbox.close()
    this.transport.close()
  }
}

/** The user a token names: a JWT's `sub` (read, not verified); "key" for any other token (never its value). */
export function subjectOf(token: string | null | undefined): string {
  if (!token) return ""
  const parts = token.split(".")
  if (parts.length === 3) {
    try {
      const sub = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"))).sub
      if (typeof sub === "string") return sub
    } catch {
      // not a JWT
    }
  }
  return "key"
}

/** Make a client. `token` may be a string or an async function (called again after a 401). */
export function createClient(opts: ClientOptions): ParleyClient {
  return new ParleyClient(opts)
}

/** Every item of a paged list, following next_cursor. */
async function* pages<T>(fetchPage: (cursor: string | null) => Promise<Page<T>>): AsyncGenerator<T> {
  let cursor: string | null = null
  do {
    const page: Page<T> = await fetchPage(cursor)
    yield* page.items
    cursor = page.next_cursor
  } while (cursor)
}

class Resource {
  constructor(protected readonly c: ParleyClient) {}
  protected async _get<T>(path: string): Promise<T> {
    return (await this.c.get<T>(path)).data
  }
  protected async _write<T>(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<T> {
    return (await this.c.write<T>(method, path, json, headers)).data
  }
}

export class Conversations extends Resource {
  create(body: { title?: string; metadata?: Record<string, unknown> } = {}): Promise<Conversation> {
    return this._write("POST", "/v1/conversations", body)
  }
  list(opts: ListOptions = {}): Promise<Page<Conversation>> {
    return this._get(`/v1/conversations${query({ ...opts })}`)
  }
  /** Every conversation, most recently active first. */
  all(limit = 100): AsyncGenerator<Conversation> {
    return pages((cursor) => this.list({ limit, cursor }))
  }
  get(id: string): Promise<Conversation> {
    return this._get(`/v1/conversations/${enc(id)}`)
  }
  /** Merge patch of title/metadata; ifMatch: the version you read (412 if it moved). */
  update(id: string, patch: { title?: string; metadata?: Record<string, unknown> | null }, opts: { ifMatch?: number } = {}): Promise<Conversation> {
    return this._write("PATCH", `/v1/conversations/${enc(id)}`, patch, ifMatch(opts.ifMatch))
  }
  async delete(id: string): Promise<void> {
    await this._write("DELETE", `/v1/conversations/${enc(id)}`)
  }
}

export interface SendMessage {
  role: "user" | "assistant" | "system" | "tool"
  content: unknown
  metadata?: Record<string, unknown>
  /** Also create a pending session (an assistant turn) for this message. */
  process?: boolean
  max_attempts?: number
  /** The branch to append to (default the active one). */
  branch?: string
}

export class Messages extends Resource {
  /** Append a message; with process: true the answer carries the new `session`. */
  send(conversationId: string, msg: SendMessage): Promise<Message> {
    return this._write("POST", `/v1/conversations/${enc(conversationId)}/messages`, msg)
  }
  /** Messages along a branch (default the active one), each with its `siblings`. */
  list(conversationId: string, opts: ListOptions & { after?: number; branch?: string } = {}): Promise<Page<Message>> {
    return this._get(`/v1/conversations/${enc(conversationId)}/messages${query({ ...opts })}`)
  }
  all(conversationId: string, limit = 100, branch?: string): AsyncGenerator<Message> {
    return pages((cursor) => this.list(conversationId, { limit, cursor, branch }))
  }
  /** The conversation's log (or opts.branch's), live: every message from opts.offset on. */
  subscribe(conversationId: string, opts: LiveOptions & { branch?: string } = {}, onItem?: (m: Message, sub: Subscription<Message>) => void): Subscription<Message> {
    const { branch, ...rest } = opts
    return this.c.subscribe<Message>(`/v1/conversations/${enc(conversationId)}/stream${query({ branch })}`, { shared: false, ...rest }, onItem)
  }
}

export class Sessions extends Resource {
  get(id: string): Promise<Session> {
    return this._get(`/v1/sessions/${enc(id)}`)
  }
  latest(conversationId: string): Promise<Session> {
    return this._get(`/v1/conversations/${enc(conversationId)}/sessions/latest`)
  }
  list(conversationId: string, opts: ListOptions & { status?: SessionStatus } = {}): Promise<Page<Session>> {
    return this._get(`/v1/conversations/${enc(conversationId)}/sessions${query({ ...opts })}`)
  }
  /** Worker: take the oldest pending session (null when there is none). */
  claim(body: { conversation_id?: string; lease_seconds?: number } = {}): Promise<Session | null> {
    return this._write("POST", "/v1/sessions/claim", body)
  }
  heartbeat(id: string, body: { lease_seconds?: number; attempt?: number } = {}): Promise<Session> {
    return this._write("POST", `/v1/sessions/${enc(id)}/heartbeat`, body)
  }
  complete(id: string, body: { content: unknown; metadata?: Record<string, unknown>; attempt?: number }): Promise<Session> {
    return this._write("POST", `/v1/sessions/${enc(id)}/complete`, body)
  }
  fail(id: string, body: { error?: unknown; attempt?: number } = {}): Promise<Session> {
    return this._write("POST", `/v1/sessions/${enc(id)}/fail`, body)
  }
  /** The user's stop button. */
  cancel(id: string): Promise<Session> {
    return this._write("POST", `/v1/sessions/${enc(id)}/cancel`, {})
  }
  /** Worker: ask the user (e.g. a tool approval); the session waits in awaiting_input. */
  await(id: string, body: { request: unknown; attempt?: number }): Promise<Session> {
    return this._write("POST", `/v1/sessions/${enc(id)}/await`, body)
  }
  /** The user's answer to await(). */
  input(id: string, body: { data: unknown }): Promise<Session> {
    return this._write("POST", `/v1/sessions/${enc(id)}/input`, body)
  }
  /**
   * The session's token stream, live. Items are what the worker appended;
   * `{"type":"attempt","attempt":N}` marks a new attempt (drop what came
   * before it). The subscription ends when the session ends.
   */
  stream<T = any>(id: string, opts: LiveOptions = {}, onItem?: (item: T, sub: Subscription<T>) => void): Subscription<T> {
    return this.c.subscribe<T>(`/v1/sessions/${enc(id)}/stream`, { shared: false, ...opts }, onItem)
  }
}

function ifMatch(version?: number): Record<string, string> | undefined {
  return version === undefined ? undefined : { "If-Match": `"${version}"` }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v)
}

/** JSON with sorted keys, to compare values. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`
  if (isObject(v))
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`
  return JSON.stringify(v)
}

function hasNullMember(v: unknown): boolean {
  if (Array.isArray(v)) return false // arrays are replaced whole: nulls in them are data
  if (!isObject(v)) return false
  return Object.values(v).some((x) => x === null || hasNullMember(x))
}

/**
 * The RFC 7386 merge patch from a to b, or undefined when b cannot be
 * reached by one (an object member whose new value is null).
 */
export function mergeDiff(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> | undefined {
  const patch: Record<string, unknown> = {}
  for (const k of Object.keys(a)) if (!(k in b) || b[k] === undefined) patch[k] = null
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined || canonical(a[k]) === canonical(v)) continue
    if (v === null) return undefined
    if (isObject(v) && isObject(a[k])) {
      const sub = mergeDiff(a[k] as Record<string, unknown>, v)
      if (!sub) return undefined
      patch[k] = sub
    } else {
      if (hasNullMember(v)) return undefined
      patch[k] = v
    }
  }
  return patch
}

export class Documents extends Resource {
  private path(collection: string, id?: string) {
    return `/v1/documents/${enc(collection)}${id === undefined ? "" : `/${enc(id)}`}`
  }
  get<T = any>(collection: string, id: string): Promise<Doc<T>> {
    return this._get(this.path(collection, id))
  }
  /** The document, or null when there is none. */
  async find<T = any>(collection: string, id: string): Promise<Doc<T> | null> {
    const a = await this.c.get(this.path(collection, id), [404])
    return a.status === 404 ? null : a.data
  }
  /** Create or replace; ifMatch: only over that version; ifNoneMatch "*": only create. */
  put<T = any>(collection: string, id: string, data: T, opts: { ifMatch?: number; ifNoneMatch?: "*" } = {}): Promise<Doc<T>> {
    const h = ifMatch(opts.ifMatch) ?? {}
    if (opts.ifNoneMatch) h["If-None-Match"] = "*"
    return this._write("PUT", this.path(collection, id), data, h)
  }
  /** RFC 7386 merge patch, optionally only over version ifMatch. */
  patch<T = any>(collection: string, id: string, patch: Record<string, unknown>, opts: { ifMatch?: number } = {}): Promise<Doc<T>> {
    return this._write("PATCH", this.path(collection, id), patch, ifMatch(opts.ifMatch))
  }
  /** A new document with a server-made id. */
  create<T = any>(collection: string, data: T): Promise<Doc<T>> {
    return this._write("POST", this.path(collection), data)
  }
  async delete(collection: string, id: string, opts: { ifMatch?: number } = {}): Promise<void> {
    await this._write("DELETE", this.path(collection, id), undefined, ifMatch(opts.ifMatch))
  }
  list<T = any>(collection: string, opts: ListOptions = {}): Promise<Page<Doc<T>>> {
    return this._get(`${this.path(collection)}${query({ ...opts })}`)
  }
  all<T = any>(collection: string, limit = 100): AsyncGenerator<Doc<T>> {
    return pages((cursor) => this.list<T>(collection, { limit, cursor }))
  }

  /**
   * Read, change, write — and on 412 (someone else wrote first) read the
   * current version and apply fn again, up to `retries` times. fn gets a
   * copy of the data (undefined when the document does not exist) and
   * returns the new data, or undefined to leave it as it is. The write is
   * a merge patch with If-Match (exactly once under retries thanks to its
   * Idempotency-Key), or a PUT with If-Match / If-None-Match: * when a
   * merge patch cannot express the change; a PUT whose retry meets 412
   * with exactly the data it wrote counts as its own success.
   */
  async update<T extends Record<string, unknown> = Record<string, unknown>>(collection: string, id: string, fn: (data: T | undefined, doc: Doc<T> | null) => T | undefined | Promise<T | undefined>, opts: { retries?: number } = {}): Promise<Doc<T> | null> {
    let cur = await this.find<T>(collection, id)
    for (let i = 0; ; i++) {
      const base = cur ? (JSON.parse(JSON.stringify(cur.data)) as T) : undefined
      const next = await fn(base, cur)
      if (next === undefined) return cur
      try {
        if (!cur) return await this.put<T>(collection, id, next, { ifNoneMatch: "*" })
        const patch = mergeDiff(cur.data, next)
        if (patch && !Object.keys(patch).length) return cur
        if (patch) return await this.patch<T>(collection, id, patch, { ifMatch: cur.version })
        return await this.put<T>(collection, id, next, { ifMatch: cur.version })
      } catch (e) {
        if (!(e instanceof ParleyError) || i >= (opts.retries ?? 10)) throw e
        if (e.status === 412) {
          // Contention: wait a little (full jitter) so racing writers spread out.
          await sleep(backoffDelay(i, { baseDelayMs: 10, maxDelayMs: 1000 }, this.c.transport.random))
          const current = (e.details?.current as Doc<T> | undefined) ?? (await this.find<T>(collection, id))
          // Our own PUT, applied by an attempt whose answer was lost?
          if (e.uncertain && current && canonical(current.data) === canonical(next) && (!cur || current.version === cur.version + 1)) return current
          cur = current ?? null
        } else if (e.status === 404 && cur) cur = null
        else throw e
      }
    }
  }
}

export class Snapshots extends Resource {
  /** A frozen copy of "/v1/conversations/{id}" or "/v1/documents/{c}/{id}". */
  create(body: { source: string; title?: string; public?: boolean; expires_in?: number; branch?: string }): Promise<Snapshot> {
    return this._write("POST", "/v1/snapshots", body)
  }
  get(id: string): Promise<Snapshot> {
    return this._get(`/v1/snapshots/${enc(id)}`)
  }
  list(opts: ListOptions = {}): Promise<Page<Snapshot>> {
    return this._get(`/v1/snapshots${query({ ...opts })}`)
  }
  /** The URL of a blob a public snapshot references (readable without a token, e.g. in <img src>). */
  blobUrl(id: string, blobId: string): string {
    return `${this.c.transport.baseUrl}/v1/snapshots/${enc(id)}/blobs/${enc(blobId)}`
  }
  /** The messages of a conversation snapshot past the first response's. */
  messages(id: string, opts: ListOptions = {}): Promise<Page<Message>> {
    return this._get(`/v1/snapshots/${enc(id)}/messages${query({ ...opts })}`)
  }
  /** Revoke it. */
  async delete(id: string): Promise<void> {
    await this._write("DELETE", `/v1/snapshots/${enc(id)}`)
  }
}

export class Feed extends Resource {
  /**
   * The caller's change events, live, from opts.offset (default "-1";
   * "now" for only what comes next). In a browser one tab holds the
   * connection and the others share it (see tabs.ts).
   */
  subscribe(opts: LiveOptions = {}, onEvent?: (ev: FeedEvent, sub: Subscription<FeedEvent>) => void): Subscription<FeedEvent> {
    return this.c.subscribe<FeedEvent>("/v1/events", opts, onEvent)
  }
  /** One catch-up page of events from offset. */
  read(offset = "-1"): Promise<Batch<FeedEvent>> {
    return this.c.readPage<FeedEvent>("/v1/events", offset)
  }
}

export class Streams extends Resource {
  private path(p: string) {
    return `/v1/stream/${p.split("/").map(enc).join("/")}`
  }
  /** Create a JSON stream (an existing one with the same settings answers 200). */
  async create(path: string): Promise<void> {
    await this._write("PUT", this.path(path), undefined, { "Content-Type": "application/json" })
  }
  /** Append one JSON value (an array appends each element), exactly once. */
  async append(path: string, value: unknown): Promise<void> {
    await this._write("POST", this.path(path), value)
  }
  read<T = any>(path: string, offset = "-1"): Promise<Batch<T>> {
    return this.c.readPage<T>(this.path(path), offset)
  }
  subscribe<T = any>(path: string, opts: LiveOptions = {}, onItem?: (item: T, sub: Subscription<T>) => void): Subscription<T> {
    return this.c.subscribe<T>(this.path(path), { shared: false, ...opts }, onItem)
  }
}

export interface EditMessage {
  content: unknown
  metadata?: Record<string, unknown>
  /** Also start a session that answers the edit on its branch. */
  process?: boolean
  max_attempts?: number
  /** Where to find the message (default the active branch). */
  branch?: string
}

export class Branches extends Resource {
  private path(conversationId: string, rest = "") {
    return `/v1/conversations/${enc(conversationId)}${rest}`
  }
  /**
   * Edit a user message: a sibling on a new branch, which becomes active.
   * With process: true the answer carries the `session` that answers it.
   */
  edit(conversationId: string, messageId: string, body: EditMessage): Promise<Message> {
    return this._write("POST", this.path(conversationId, `/messages/${enc(messageId)}/edit`), body)
  }
  /** Regenerate an assistant answer: a new branch (active) and the session whose answer becomes the sibling. */
  regenerate(conversationId: string, messageId: string, body: { branch?: string; max_attempts?: number } = {}): Promise<{ branch: Branch; session: Session }> {
    return this._write("POST", this.path(conversationId, `/messages/${enc(messageId)}/regenerate`), body)
  }
  /** The messages along a branch (default the active one), each with its `siblings`. */
  messages(conversationId: string, opts: ListOptions & { after?: number; branch?: string } = {}): Promise<Page<Message>> {
    return this.c.messages.list(conversationId, opts)
  }
  /** Branches in creation order, main first; `active` names the active one. */
  list(conversationId: string, opts: ListOptions = {}): Promise<Page<Branch> & { active: string }> {
    return this._get(this.path(conversationId, `/branches${query({ ...opts })}`))
  }
  get(conversationId: string, branchId: string): Promise<Branch> {
    return this._get(this.path(conversationId, `/branches/${enc(branchId)}`))
  }
  /** The switcher's arrows: make a branch the active one. */
  activate(conversationId: string, branchId: string): Promise<Branch> {
    return this._write("PATCH", this.path(conversationId, `/branches/${enc(branchId)}`), { active: true })
  }
}

export type BlobBody = Blob | ArrayBuffer | Uint8Array

export class Blobs extends Resource {
  /**
   * Upload bytes (sent with their Content-Length, never chunked). The
   * content type is opts.contentType, else a Blob's own type, else
   * application/octet-stream. The same bytes again answer the same blob.
   */
  async upload(data: BlobBody, opts: { contentType?: string; signal?: AbortSignal } = {}): Promise<BlobInfo> {
    const type = opts.contentType || (typeof Blob !== "undefined" && data instanceof Blob ? data.type : "") || "application/octet-stream"
    const a = await this.c.transport.request<BlobInfo>({
      method: "POST",
      path: "/v1/blobs",
      body: data,
      headers: { "Content-Type": type },
      idempotencyKey: newKey(),
      signal: opts.signal,
    })
    return a.data
  }
  /** The metadata-free download: the bytes as a Blob (its type is the uploaded one). */
  async download(id: string, opts: { signal?: AbortSignal } = {}): Promise<Blob> {
    return (await this.c.transport.request<Blob>({ method: "GET", path: `/v1/blobs/${enc(id)}`, raw: true, signal: opts.signal })).data
  }
  /** Bytes start..end (inclusive; end omitted: to the end): 206 with the slice and the blob's total size. */
  async range(id: string, start: number, end?: number): Promise<{ data: Blob; status: number; total: number | null }> {
    const a = await this.c.transport.request<Blob>({ method: "GET", path: `/v1/blobs/${enc(id)}`, raw: true, headers: { Range: `bytes=${start}-${end ?? ""}` } })
    const m = /\/(\d+)$/.exec(a.headers.get("content-range") ?? "")
    return { data: a.data, status: a.status, total: m ? Number(m[1]) : null }
  }
  /** A URL that reads the blob without a token until it expires (1 s to 7 days; default 1 h). */
  async signedUrl(id: string, expiresIn?: number): Promise<{ url: string; expires_at: string }> {
    const r = await this._write<{ url: string; expires_at: string }>("POST", `/v1/blobs/${enc(id)}/url`, expiresIn === undefined ? {} : { expires_in: expiresIn })
    return { ...r, url: r.url.startsWith("/") ? this.c.transport.baseUrl + r.url : r.url }
  }
  /** The URL of a blob through a public snapshot that references it (no token needed). */
  snapshotUrl(snapshotId: string, id: string): string {
    return this.c.snapshots.blobUrl(snapshotId, id)
  }
}

export class Search extends Resource {
  /** One page of hits for q (words, word*, "a phrase"), best first. */
  query(q: string, opts: ListOptions = {}): Promise<Page<SearchHit>> {
    return this._get(`/v1/search${query({ q, ...opts })}`)
  }
  /** Every hit, following next_cursor. */
  all(q: string, limit = 100): AsyncGenerator<SearchHit> {
    return pages((cursor) => this.query(q, { limit, cursor }))
  }
}
