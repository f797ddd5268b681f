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
  /** The branch it was written on, when that is not main (a send or an edit's answer). */
  branch?: string
  /** In a list: the messages at this point ("< index/count >"); absent when it has none. */
  siblings?: Siblings
}

/** A message's siblings: ids[i] is shown by activating branches[i]; index is 1-based. */
export interface Siblings {
  index: number
  count: number
  ids: string[]
  branches: string[]
}

/** A conversation branch (main, or one made by an edit or a regenerate). */
export interface Branch {
  id: string
  conversation_id: string
  /** The branch it forks (null for main). */
  parent: string | null
  /** It shares parent's messages before this seq. */
  fork_seq: number
  message_count: number
  active: boolean
  /** The regenerating session, if a regenerate made it. */
  session_id: string | null
  created_at: string
}

/** An uploaded blob; id is the hex SHA-256 of its bytes. */
export interface BlobInfo {
  id: string
  size: number
  content_type: string
  created_at: string
}

/** A content part (or any JSON object) that references a blob. */
export interface BlobRef {
  type: "blob"
  id: string
}

/** One search hit; message_id and seq are null for a title. */
export interface SearchHit {
  conversation_id: string
  kind: "title" | "message"
  message_id: string | null
  seq: number | null
  /** About 16 words around the match, matched words in [ ]. */
  snippet: string
  /** Higher is better; compare only within one answer. */
  rank: number
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
