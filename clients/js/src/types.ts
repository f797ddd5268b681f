// types.ts — the shapes Parley answers with (see the server's README).

/** A list page: pass next_cursor back as `cursor` for the next one. */
export interface Page<T> {
  items: T[]
  next_cursor: string | null
}

export interface Conversation {
  id: string
  title: string | null
  metadata: Record<string, unknown>
  owner: string
  /** Grows with every change (also a new message); the ETag. */
  version: number
  created_at: string
  updated_at: string
  message_count: number
  last_message_at: string | null
}

export interface Message {
  id: string
  conversation_id: string
  /** 1, 2, 3, ... without gaps. */
  seq: number
  role: "user" | "assistant" | "system" | "tool"
  content: unknown
  metadata: Record<string, unknown>
  session_id: string | null
  created_at: string
  /** Present on the answer to a send with process: true. */
  session?: Session
}

export type SessionStatus = "pending" | "processing" | "awaiting_input" | "completed" | "failed" | "cancelled"

export interface Session {
  id: string
  conversation_id: string
  message_id: string
  status: SessionStatus
  attempt: number
  max_attempts: number
  lease_expires_at: string | null
  error: unknown
  request: unknown
  input: unknown
  result_message_id: string | null
  created_at: string
  updated_at: string
  /** The token stream's path, /v1/sessions/{id}/stream. */
  stream: string
}

export interface Doc<T = any> {
  id: string
  collection: string
  version: number
  checksum: string
  created_at: string
  updated_at: string
  data: T
}

export interface Snapshot {
  id: string
  url: string
  source: string
  title: string | null
  public: boolean
  created_at: string
  expires_at: string | null
  /** On GET: {conversation, messages, next_cursor?} or {document}. */
  content?: { conversation?: Conversation; messages?: Message[]; next_cursor?: string | null; document?: Doc }
}

export interface FeedEvent {
  type: string
  at: string
  user?: string
  conversation_id?: string
  message_id?: string
  session_id?: string
  snapshot_id?: string
  document?: { collection: string; id: string; version: number }
  stream?: string
  data?: any
}
