// node.ts — Node-only pieces: the outbox kept in a file.
//
// FileOutboxStore keeps pending writes as JSON lines, one entry a line, in
// enqueue order. Every change rewrites the whole file atomically: write a
// temporary file beside it, fsync it, rename it over the old one, fsync the
// directory. A crash therefore leaves either the old or the new file, never
// a torn one, and an entry that put() resolved is on disk. The queue is
// meant to be short (writes waiting for the network), so rewriting it whole
// is cheap.
//
// One process should own a file at a time; a second instance opened after
// the first stopped (a restart) finds its entries and sends them again with
// the same Idempotency-Keys, which Parley applies once.
import { randomBytes } from "node:crypto"
import { promises as fs } from "node:fs"
import path from "node:path"
import type { OutboxEntry, OutboxStore } from "./outbox.js"

export class FileOutboxStore implements OutboxStore {
  /** The file's entries by id, in enqueue order (null until loaded). */
  private entries: Map<string, OutboxEntry> | null = null
  /** Writes of the file, one after another. */
  private chain: Promise<void> = Promise.resolve()

  constructor(readonly file: string) {}

  async load(): Promise<OutboxEntry[]> {
    if (!this.entries) {
      this.entries = new Map()
      let text = ""
      try {
        text = await fs.readFile(this.file, "utf8")
      } catch (e: any) {
        if (e?.code !== "ENOENT") throw e
      }
      for (const line of text.split("\n")) {
        if (!line.trim()) continue
        const e = JSON.parse(line) as OutboxEntry
        this.entries.set(e.id, e)
      }
    }
    return [...this.entries.values()]
  }

  async put(entry: OutboxEntry): Promise<void> {
    await this.load()
    this.entries!.set(entry.id, entry)
    return this.save()
  }

  async delete(id: string): Promise<void> {
    await this.load()
    if (this.entries!.delete(id)) return this.save()
  }

  private save(): Promise<void> {
    const text = [...this.entries!.values()].map((e) => `${JSON.stringify(e)}\n`).join("")
    const run = this.chain.then(() => writeAtomically(this.file, text))
    this.chain = run.catch(() => {})
    return run
  }
}

/** write → fsync → rename → fsync of the directory. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file))
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`)
  const fh = await fs.open(tmp, "w", 0o600)
  try {
    await fh.writeFile(text, "utf8")
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await fs.rename(tmp, file)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw e
  }
  const d = await fs.open(dir, "r")
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}
