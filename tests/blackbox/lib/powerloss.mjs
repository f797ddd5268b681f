// The "power cut" step of the power-loss test (RELIABILITY.md item 2).
//
// tests/fault/powerloss.c, preloaded into the server, journals what every
// write since a file's last fsync/fdatasync overwrote. After the server is
// killed with SIGKILL, powerCut(journal, mode) reads that journal and puts
// the data files in a state a power cut could have left:
//
//   "revert"  every unsynced write is undone: each file is exactly as it
//             was at its last sync;
//   "tear"    each 512-byte sector an unsynced write touched independently
//             keeps the new bytes, goes back to the old ones, or (1 in 10)
//             holds garbage, and the file's size is either the old or the
//             new one. Bytes outside the written ranges never change (the
//             "powersafe overwrite" property SQLite assumes of the disk).
//
// The synced state is rebuilt by applying the undo records of the unsynced
// writes in reverse order to the file as it is now.
import fs from "node:fs"

const SECTOR = 512

/** Parse the journal; a record cut short at the end is ignored. */
export function readJournal(file) {
  const buf = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0)
  const records = []
  let at = 0
  while (at + 3 <= buf.length) {
    const kind = String.fromCharCode(buf[at])
    const plen = buf.readUInt16LE(at + 1)
    const numsAt = at + 3 + plen
    if (numsAt + 32 > buf.length) break
    const path = buf.toString("utf8", at + 3, numsAt)
    const off = Number(buf.readBigUInt64LE(numsAt))
    const len = Number(buf.readBigUInt64LE(numsAt + 8))
    const oldSize = Number(buf.readBigUInt64LE(numsAt + 16))
    const preLen = Number(buf.readBigUInt64LE(numsAt + 24))
    const preAt = numsAt + 32
    if (!"WTS".includes(kind)) throw new Error(`powerloss journal: bad record kind at byte ${at}`)
    if (preAt + preLen > buf.length) break
    records.push({ kind, path, off, len, oldSize, pre: buf.subarray(preAt, preAt + preLen) })
    at = preAt + preLen
  }
  return records
}

/** The records of each file written since its last sync: Map path -> records. */
export function unsynced(records) {
  const byPath = new Map()
  for (const r of records) {
    if (r.kind === "S") byPath.delete(r.path)
    else {
      if (!byPath.has(r.path)) byPath.set(r.path, [])
      byPath.get(r.path).push(r)
    }
  }
  return byPath
}

function resized(buf, size) {
  if (buf.length === size) return buf
  if (buf.length > size) return buf.subarray(0, size)
  return Buffer.concat([buf, Buffer.alloc(size - buf.length)])
}

/** The file's content at its last sync, from its content now and its unsynced records. */
function syncedState(now, recs) {
  let s = Buffer.from(now)
  for (let i = recs.length - 1; i >= 0; i--) {
    const r = recs[i]
    if (r.kind === "W") {
      if (s.length < r.off + r.pre.length) s = resized(s, r.off + r.pre.length)
      r.pre.copy(s, r.off)
      s = Buffer.from(resized(s, r.oldSize))
    } else {
      s = Buffer.from(resized(s, r.oldSize))
      r.pre.copy(s, r.off)
    }
  }
  return s
}

/**
 * Apply a power cut to the files named in the journal. mode: "revert" or
 * "tear"; rand: a () => [0, 1) function. Returns counts for the report:
 * { files, writes, bytes, sectorsOld, sectorsNew, sectorsGarbage }.
 */
export function powerCut(journal, mode, rand = Math.random) {
  const stats = { files: 0, writes: 0, bytes: 0, sectorsOld: 0, sectorsNew: 0, sectorsGarbage: 0 }
  for (const [file, recs] of unsynced(readJournal(journal))) {
    if (!fs.existsSync(file)) continue
    const now = fs.readFileSync(file)
    const old = syncedState(now, recs)
    stats.files++
    stats.writes += recs.filter((r) => r.kind === "W").length
    stats.bytes += recs.reduce((n, r) => n + (r.kind === "W" ? r.len : r.pre.length), 0)
    let out
    if (mode === "revert") {
      out = old
    } else if (mode === "tear") {
      const size = rand() < 0.5 ? old.length : now.length
      out = Buffer.from(resized(old, size))
      const newer = resized(now, size)
      // Which bytes were written since the sync, then a fate per sector.
      const touched = new Uint8Array(Math.max(old.length, now.length))
      for (const r of recs) {
        const [from, to] = r.kind === "W" ? [r.off, r.off + r.len] : [r.off, r.oldSize]
        touched.fill(1, from, Math.min(to, touched.length))
      }
      for (let sec = 0; sec < size; sec += SECTOR) {
        const end = Math.min(sec + SECTOR, size)
        if (!touched.subarray(sec, end).includes(1)) continue
        const x = rand()
        const fate = x < 0.45 ? "old" : x < 0.9 ? "new" : "garbage"
        if (fate === "old") stats.sectorsOld++
        else if (fate === "new") stats.sectorsNew++
        else stats.sectorsGarbage++
        if (fate === "old") continue
        for (let k = sec; k < end; k++) {
          if (!touched[k]) continue
          out[k] = fate === "new" ? newer[k] : Math.floor(rand() * 256)
        }
      }
    } else {
      throw new Error(`powerCut: unknown mode ${mode}`)
    }
    fs.writeFileSync(file, out)
  }
  fs.rmSync(journal, { force: true })
  return stats
}
