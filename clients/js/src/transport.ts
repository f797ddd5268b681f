// transport.ts — one HTTP request to Parley, with authentication and retries.
//
// Every call of the SDK goes through Transport.request(). It
//   1. asks the token provider for a bearer token (a string, or a function
//      called again with {refresh: true} once after a 401, then retried);
//   2. sends the request with fetch (the global one, or one given in the
//      options, so tests and unusual runtimes can wrap it);
//   3. retries what is safe to retry: network errors, 408, 409
//      idempotency_key_in_flight, 429 and 5xx (but 501/505), with
//      exponential backoff and full jitter, or exactly the server's
//      Retry-After when it sends one. Any other 4xx is final.
//
// A write is safe to retry only because its Idempotency-Key stays the same
// on every attempt (the outbox fixes it once per logical operation) and its
// body is sent byte for byte as the first time; this file never makes keys.

/** A bearer token, or a function that returns one (refresh: true after a 401). */
export type TokenProvider =
  | string
  | null
  | ((ctx: { refresh: boolean }) => string | null | undefined | Promise<string | null | undefined>)

/** How failed attempts are retried. */
export interface RetryOptions {
  /** Attempts after the first one (default 6). */
  retries?: number
  /** The first backoff ceiling in ms (default 250); it doubles per attempt. */
  baseDelayMs?: number
  /** The largest backoff ceiling in ms (default 30000). */
  maxDelayMs?: number
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>

export interface TransportOptions {
  /** Where Parley is, e.g. "https://api.example.com" (no trailing path). */
  baseUrl: string
  token?: TokenProvider
  fetch?: FetchLike
  retry?: RetryOptions
  /** Extra headers on every request (e.g. Parley-User for a backend). */
  headers?: Record<string, string>
  /** A random number in [0, 1) for the jitter (tests pin it). */
  random?: () => number
}

/** An error answer from Parley ({"error":{code,message,details}}), or a network failure (status 0). */
export class ParleyError extends Error {
  /** HTTP status; 0 for a network error. */
  readonly status: number
  /** Parley's snake_case error code ("network_error" when no answer came). */
  readonly code: string
  /** error.details from the body ({} when absent). */
  readonly details: any
  /** Retry-After in ms, when the server sent one. */
  readonly retryAfterMs: number | undefined
  /** An earlier attempt of the same write got no answer: it may have been applied. */
  uncertain = false
  constructor(status: number, code: string, message: string, details: any = {}, retryAfterMs?: number) {
    super(message)
    this.name = "ParleyError"
    this.status = status
    this.code = code
    this.details = details ?? {}
    this.retryAfterMs = retryAfterMs
  }
  /** True for failures that the same request may later get past. */
  get retryable(): boolean {
    return isRetryable(this.status, this.code)
  }
}

/** What a request answered. */
export interface Answer<T = any> {
  status: number
  headers: Headers
  /** The parsed JSON body, the text for other types, null when empty. */
  data: T
}

export interface Call {
  method: string
  /** Path and query, e.g. "/v1/conversations?limit=20". */
  path: string
  /** A JSON value, serialised here; or a string sent as it is. */
  json?: unknown
  /** Text sent as it is, or bytes (a blob upload: fetch sets Content-Length). */
  body?: string | Blob | ArrayBuffer | Uint8Array
  headers?: Record<string, string>
  idempotencyKey?: string
  /** Answer the body as a Blob (a download) instead of JSON or text. */
  raw?: boolean
  signal?: AbortSignal
  /** Override RetryOptions.retries for this call (0: a single attempt). */
  retries?: number
  /** Statuses that are answers, not errors (e.g. 304, 412 for a caller that merges). */
  accept?: number[]
}

export function isRetryable(status: number, code?: string): boolean {
  if (status === 0 || status === 408 || status === 429) return true
  if (status === 409) return code === "idempotency_key_in_flight"
  return status >= 500 && status !== 501 && status !== 505
}

/** Retry-After as ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

/** Full jitter: a uniform delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt: number, opts: RetryOptions = {}, random: () => number = Math.random): number {
  const base = opts.baseDelayMs ?? 250
  const max = opts.maxDelayMs ?? 30_000
  return Math.floor(random() * Math.min(max, base * 2 ** Math.min(attempt, 30)))
}

/** A signal that aborts when any of the given ones does (AbortSignal.any where it exists). */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => !!s)
  if (list.length === 1) return list[0]
  const any = (AbortSignal as any).any
  if (typeof any === "function") return any.call(AbortSignal, list)
  const ctl = new AbortController()
  for (const s of list) {
    if (s.aborted) {
      ctl.abort(s.reason)
      break
    }
    s.addEventListener("abort", () => ctl.abort(s.reason), { once: true })
  }
  return ctl.signal
}

/** The reason every call of a closed client rejects with. */
export class ClientClosed extends Error {
  constructor() {
    super("the client is closed")
    this.name = "ClientClosed"
  }
}

/** Sleep ms, or reject with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener("abort", abort)
      resolve()
    }
    function abort() {
      clearTimeout(t)
      reject(signal!.reason)
    }
    signal?.addEventListener("abort", abort, { once: true })
  })
}

export class Transport {
  readonly baseUrl: string
  readonly retry: RetryOptions
  readonly random: () => number
  private readonly provider: TokenProvider
  private readonly fetchImpl: FetchLike
  private readonly extraHeaders: Record<string, string>
  private token: Promise<string | null | undefined> | null = null
  private readonly life = new AbortController()

  constructor(opts: TransportOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, "")
    this.provider = opts.token ?? null
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init))
    this.retry = opts.retry ?? {}
    this.extraHeaders = opts.headers ?? {}
    this.random = opts.random ?? Math.random
  }

  /** Aborts when close() is called: every call and subscription of this client ends. */
  get closedSignal(): AbortSignal {
    return this.life.signal
  }

  /** End every call in flight and every retry wait; later calls reject with ClientClosed. */
  close(): void {
    if (!this.life.signal.aborted) this.life.abort(new ClientClosed())
  }

  /** The current token (the provider is asked once, then again only after a 401). */
  getToken(refresh = false): Promise<string | null | undefined> {
    const p = this.provider
    if (typeof p !== "function") return Promise.resolve(p)
    if (refresh || !this.token) {
      const t = Promise.resolve().then(() => p({ refresh }))
      this.token = t
      t.catch(() => {
        if (this.token === t) this.token = null
      })
    }
    return this.token!
  }

  /** Headers for a request: the extra ones, the token, the caller's. */
  async headers(extra?: Record<string, string>, refresh = false): Promise<Record<string, string>> {
    const h: Record<string, string> = { ...this.extraHeaders, ...extra }
    const token = await this.getToken(refresh)
    if (token) h.Authorization = `Bearer ${token}`
    return h
  }

  /** One fetch with the token; a 401 asks the provider once more and retries once. */
  async fetchOnce(path: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Response> {
    const url = this.baseUrl + path
    init = { ...init, signal: anySignal(init.signal ?? undefined, this.life.signal) }
    if (init.signal!.aborted) throw init.signal!.reason
    let res = await this.fetchImpl(url, { ...init, headers: await this.headers(init.headers) })
    if (res.status === 401 && typeof this.provider === "function") {
      await res.body?.cancel().catch(() => {})
      res = await this.fetchImpl(url, { ...init, headers: await this.headers(init.headers, true) })
    }
    return res
  }

  /** Send a call, retrying what may be retried; resolve the answer or reject a ParleyError. */
  async request<T = any>(call: Call): Promise<Answer<T>> {
    const retries = call.retries ?? this.retry.retries ?? 6
    const headers: Record<string, string> = { ...call.headers }
    let body = call.body
    if (call.json !== undefined) {
      body = JSON.stringify(call.json)
      headers["Content-Type"] ??= call.method === "PATCH" ? "application/merge-patch+json" : "application/json"
    }
    if (call.idempotencyKey) headers["Idempotency-Key"] = call.idempotencyKey
    let uncertain = false
    call = { ...call, signal: anySignal(call.signal, this.life.signal) }
    for (let attempt = 0; ; attempt++) {
      let err: ParleyError
      try {
        const res = await this.fetchOnce(call.path, { method: call.method, headers, body: body as BodyInit | undefined, signal: call.signal })
        const data = call.raw && res.ok ? await res.blob() : await readBody(res)
        if (res.ok || call.accept?.includes(res.status)) return { status: res.status, headers: res.headers, data }
        err = toError(res, data)
      } catch (e) {
        if (call.signal?.aborted) throw call.signal.reason
        if (e instanceof ParleyError) throw e
        err = new ParleyError(0, "network_error", `network error: ${(e as Error)?.message ?? e}`)
      }
      err.uncertain ||= uncertain
      uncertain ||= err.status === 0
      if (!err.retryable || attempt >= retries) throw err
      await sleep(err.retryAfterMs ?? backoffDelay(attempt, this.retry, this.random), call.signal)
    }
  }
}

async function readBody(res: Response): Promise<any> {
  if (res.status === 204 || res.status === 304) return null
  const text = await res.text()
  if (!text) return null
  if (/json/.test(res.headers.get("content-type") ?? "")) {
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return text
}

function toError(res: Response, data: any): ParleyError {
  const e = data && typeof data === "object" && data.error && typeof data.error === "object" ? data.error : null
  const code = typeof e?.code === "string" ? e.code : `http_${res.status}`
  const message = typeof e?.message === "string" ? e.message : `HTTP ${res.status}`
  return new ParleyError(res.status, code, message, e?.details ?? {}, parseRetryAfter(res.headers.get("retry-after")))
}
