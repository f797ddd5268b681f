// outbox-idb.ts — the outbox kept in IndexedDB, so writes survive a reload.
//
// One object store, "entries", keyed by the entry id; load() sorts by
// createdAt, which the outbox makes strictly increasing. Each put and delete is
// its own readwrite transaction and resolves on the transaction's
// `complete` event, i.e. once the browser has committed it. Several tabs
// may open the same database; see outbox.ts for why that is safe.
import type { OutboxEntry, OutboxStore } from "./outbox.js"

function promised<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

export class IndexedDBOutboxStore implements OutboxStore {
  private db: Promise<IDBDatabase>

  constructor(name = "parley-outbox", factory: IDBFactory = (globalThis as any).indexedDB) {
    const open = factory.open(name, 1)
    open.onupgradeneeded = () => open.result.createObjectStore("entries", { keyPath: "id" })
    this.db = promised(open)
  }

  private async tx(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => void): Promise<void> {
    const db = await this.db
    const tx = db.transaction("entries", mode)
    fn(tx.objectStore("entries"))
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve()
      tx.onerror = tx.onabort = () => reject(tx.error)
    })
  }

  async load(): Promise<OutboxEntry[]> {
    const db = await this.db
    const all = (await promised(db.transaction("entries").objectStore("entries").getAll())) as OutboxEntry[]
    return all.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
  }

  put(entry: OutboxEntry): Promise<void> {
    return this.tx("readwrite", (s) => s.put(entry))
  }

  delete(id: string): Promise<void> {
    return this.tx("readwrite", (s) => s.delete(id))
  }
}

/** True where IndexedDB exists (browsers, workers). */
export function hasIndexedDB(): boolean {
  return typeof (globalThis as any).indexedDB?.open === "function"
}
